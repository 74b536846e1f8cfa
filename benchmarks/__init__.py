"""Synthetic data generator and the speed / quality benchmarks behind `make bench`."""
