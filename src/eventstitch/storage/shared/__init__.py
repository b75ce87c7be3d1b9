"""What every backend does alike, written once: codecs, query planning, SQL over a small
dialect, migration discovery, group-commit jobs."""
