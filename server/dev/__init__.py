"""Development mode: the local monday (fake monday API, developer harness)."""
