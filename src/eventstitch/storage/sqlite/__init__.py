"""The embedded backend: SQLite in WAL mode, one writer thread, read-only reader threads."""
