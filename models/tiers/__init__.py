"""Tiers: the main value-tier scheme, the alternative schemes it is compared with, and their stability analysis."""
