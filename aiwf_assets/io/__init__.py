"""Storage: Parquet files (local dir or S3) and the SQL warehouse (DuckDB or Postgres)."""
