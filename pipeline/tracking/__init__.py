"""MLflow: runs and their context, the model registry and promotion, plots logged to runs, the HTML report."""
