"""The server backend: PostgreSQL, for several collector processes on one database."""
