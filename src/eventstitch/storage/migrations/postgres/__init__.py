"""PostgreSQL migrations, applied in order of their number (see storage/postgres.py)."""
