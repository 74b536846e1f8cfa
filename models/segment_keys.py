"""The closed vocabulary of behavioral segment names (:mod:`tiercast.models.segments`), importable without
scikit-learn: configs check playbook rules against it when they are loaded."""

from __future__ import annotations

#: feature -> (transform, descriptor when high, descriptor when low). Transform "log" = log1p of the value floored at 0.
DESCRIPTORS: dict[str, tuple[str, str, str]] = {
    "spend_trend": ("identity", "growing", "declining"),
    "tenure_days": ("log", "long-tenure", "new"),
    "frequency_orders": ("log", "frequent", "occasional"),
    "recency_days": ("log", "lapsing", "active"),
    "review_score_mean": ("identity", "satisfied", "dissatisfied"),
    "complaint_count": ("log", "complaining", "uncomplaining"),
    "monetary_mean_order": ("log", "big-basket", "small-basket"),
    "refund_share": ("identity", "returns-heavy", "few-returns"),
}
AVERAGE = "average"
#: Every key a segment can get: playbook rules may name these.
SEGMENT_KEYS: tuple[str, ...] = (*(w for _, hi, lo in DESCRIPTORS.values() for w in (hi, lo)), AVERAGE)
