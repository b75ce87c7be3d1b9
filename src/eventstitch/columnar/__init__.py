"""The columnar side: events written as Parquet (export, insight segments) and read by DuckDB."""
