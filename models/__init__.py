"""Learned things: tier schemes, value and churn models, baselines, metrics and the scoring pyfunc."""
