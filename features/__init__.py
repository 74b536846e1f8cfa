"""Point-in-time customer features and future-window labels, defined once in Ibis and run on DuckDB by default."""
