"""labmate.drafting."""
