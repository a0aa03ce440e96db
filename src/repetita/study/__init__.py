"""Studies: TOML spec -> content-hashed runs -> SQLite store -> fitted report."""
