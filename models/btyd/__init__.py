"""Buy-till-you-die models: the BG/NBD, Pareto/NBD and Gamma-Gamma fitters, the forecast that combines them, and
their outputs stacked into the gradient-boosted models."""
