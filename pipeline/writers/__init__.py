"""Writing outputs: atomic files (Parquet, CSV, JSON) and database tables swapped in within one transaction."""
