"""The data contract: the names of the columns that travel between tiercast's modules, defined once.

* transactions: :data:`TRANSACTION_COLUMNS` (required), :data:`OPTIONAL_TRANSACTION_COLUMNS`, and the
  customer-level :data:`SATISFACTION_COLUMNS`;
* feature and training rows: :data:`ID_COLUMNS` (customer and cutoff), the features (every other column; the
  window spend is :func:`spend_column`), the :data:`LABEL_COLUMNS`;
* scores: :data:`SCORE_COLUMNS`, the optional :data:`REASON_COLUMNS`, :data:`SEGMENT_COLUMNS` and the playbook's
  :data:`PLAYBOOK_COLUMNS`, and the :data:`MODEL_STAMP_COLUMNS` that say which model scored a row at which cutoff.
"""

from __future__ import annotations

CUSTOMER_ID = "customer_id"
CUTOFF = "cutoff"

#: Columns every canonical transaction frame has.
TRANSACTION_COLUMNS: tuple[str, ...] = (CUSTOMER_ID, "timestamp", "amount", "order_id")
#: Columns a transaction frame has only when the source maps them.
OPTIONAL_TRANSACTION_COLUMNS: tuple[str, ...] = ("quantity", "product_id", "category", "channel")
#: Customer-level satisfaction rows (from reviews).
SATISFACTION_COLUMNS: tuple[str, ...] = (CUSTOMER_ID, "timestamp", "review_score", "is_complaint")

#: The key of a feature or training row: one customer at one cutoff.
ID_COLUMNS: tuple[str, ...] = (CUSTOMER_ID, CUTOFF)

FUTURE_VALUE = "future_value"
FUTURE_ORDERS = "future_orders"
CHURNED = "churned"
#: What each customer did in ``[cutoff, cutoff + horizon)``: net spend, purchases, and 1.0 for no purchase.
LABEL_COLUMNS: tuple[str, ...] = (FUTURE_VALUE, FUTURE_ORDERS, CHURNED)
#: Days of a row's label window, on rows labelled with windows of different lengths (the benchmarks' rows).
LABEL_DAYS = "label_days"

CURRENT_TIER = "current_tier"
PREDICTED_TIER = "predicted_tier"
PREDICTED_VALUE = "predicted_value"
CHURN_PROBABILITY = "churn_probability"
VALUE_AT_RISK = "value_at_risk"
#: What the scorer returns for every customer.
SCORE_COLUMNS: tuple[str, ...] = (CURRENT_TIER, PREDICTED_TIER, PREDICTED_VALUE, CHURN_PROBABILITY, VALUE_AT_RISK)
#: The two model outputs whose distributions are watched for drift.
DRIFT_SCORE_COLUMNS: tuple[str, ...] = (PREDICTED_VALUE, CHURN_PROBABILITY)
#: The top reasons of each customer's churn and value predictions (scored on request).
REASON_COLUMNS: tuple[str, ...] = ("churn_reasons", "value_reasons")
#: The behavioral segment of a scored customer and its key in the playbook.
SEGMENT_COLUMNS: tuple[str, ...] = ("segment", "segment_key")
#: The playbook's answer for a scored customer.
PLAYBOOK_COLUMNS: tuple[str, ...] = ("churn_band", "action", "channel")
#: Which registered model scored the row, and at which cutoff.
MODEL_STAMP_COLUMNS: tuple[str, ...] = ("model_name", "model_version", CUTOFF)


def spend_column(horizon_days: float) -> str:
    """Name of the feature holding net spend in the last ``horizon_days`` before the cutoff."""
    h = float(horizon_days)
    if h <= 0 or h != round(h):
        raise ValueError(f"horizon_days must be a positive whole number of days, got {horizon_days}")
    return f"spend_{int(h)}d"


def feature_columns(columns: object) -> list[str]:
    """The feature columns of a feature or training frame (or of its column names): all but ids and labels."""
    names = getattr(columns, "columns", columns)
    return [c for c in names if c not in ID_COLUMNS and c not in LABEL_COLUMNS]
