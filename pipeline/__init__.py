"""I/O, configuration, MLflow tracking and the command line: everything that touches files and services."""
