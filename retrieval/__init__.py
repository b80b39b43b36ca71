"""labmate.retrieval."""
