"""Errors every layer may raise about the data itself (too little or degenerate history to fit anything)."""

from __future__ import annotations


class InsufficientDataError(ValueError):
    """The data cannot support the request: too short a history, too few customers, no repeat buyers or a label
    with one class. The message says what is missing and what to change."""
