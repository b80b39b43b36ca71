"""labmate.training."""
