"""Storage: Parquet files and the model store (local dir or S3), the SQL warehouse (DuckDB
or Postgres)."""
