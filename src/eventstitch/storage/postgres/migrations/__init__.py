"""PostgreSQL migrations, applied in order of their number (see `postgres.db`)."""
