"""The default pay policy (default.toml): data."""
