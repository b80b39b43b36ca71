"""labmate's application layer: configuration, wiring, the `labmate` CLI (and later Slack)."""
