"""SQLite migrations, applied in order of their number (see `sqlite.db`)."""
