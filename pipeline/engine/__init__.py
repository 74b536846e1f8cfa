"""The engine that runs the feature and label expressions (embedded DuckDB or Spark): its config, the connection,
samples taken in the engine, training rows collected from it, and partitioned writes."""
