"""The data contract: the names of the columns that travel between tiercast's modules, defined once.

* transactions: :data:`TRANSACTION_COLUMNS` (required), :data:`OPTIONAL_TRANSACTION_COLUMNS`, and the
  customer-level :data:`SATISFACTION_COLUMNS`;
* feature and training rows: :data:`ID_COLUMNS` (customer and cutoff), the features (every other column; the
  window spend is :func:`spend_column`), the :data:`LABEL_COLUMNS`;
* scores: :data:`SCORE_COLUMNS`, the optional :data:`REASON_COLUMNS`, :data:`SEGMENT_COLUMNS` and the playbook's
  :data:`PLAYBOOK_COLUMNS`, and the :data:`MODEL_STAMP_COLUMNS` that say which model scored a row at which cutoff;
* tier tables and the monitor's months: :data:`TIER`.

Each name is a constant here and every other module uses the constant (``tests/test_layout.py`` fails on a column
name written as a string elsewhere).
"""

from __future__ import annotations

CUSTOMER_ID = "customer_id"
CUTOFF = "cutoff"

TIMESTAMP = "timestamp"
AMOUNT = "amount"
ORDER_ID = "order_id"
#: Columns every canonical transaction frame has.
TRANSACTION_COLUMNS: tuple[str, ...] = (CUSTOMER_ID, TIMESTAMP, AMOUNT, ORDER_ID)
QUANTITY = "quantity"
PRODUCT_ID = "product_id"
CATEGORY = "category"
#: The sales channel of a transaction, and the contact channel the playbook recommends (one name, two frames).
CHANNEL = "channel"
#: Columns a transaction frame has only when the source maps them.
OPTIONAL_TRANSACTION_COLUMNS: tuple[str, ...] = (QUANTITY, PRODUCT_ID, CATEGORY, CHANNEL)
REVIEW_SCORE = "review_score"
IS_COMPLAINT = "is_complaint"
#: Customer-level satisfaction rows (from reviews).
SATISFACTION_COLUMNS: tuple[str, ...] = (CUSTOMER_ID, TIMESTAMP, REVIEW_SCORE, IS_COMPLAINT)

#: The key of a feature or training row: one customer at one cutoff.
ID_COLUMNS: tuple[str, ...] = (CUSTOMER_ID, CUTOFF)
#: Days back of the "year ago" summary (:data:`YEAR_AGO_COLUMNS`).
YEAR_AGO_DAYS = 365
#: A customer's buy-till-you-die summary as it stood a year before the cutoff (repeat purchase days, first-to-last
#: purchase days, repeat spend mean, spend mean per purchase day; NaN without a transaction by then): features for
#: the seasonal level of the BTYD model (last year's same window), never inputs of the trees.
YEAR_AGO_COLUMNS: tuple[str, ...] = (
    "year_ago_repeat_purchase_days",
    "year_ago_first_to_last_days",
    "year_ago_repeat_spend_mean",
    "year_ago_day_spend_mean",
)

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
#: The tier of a customer in a tier table or a month of the monitor (the scheme's tier names).
TIER = "tier"
CHURN_REASONS = "churn_reasons"
VALUE_REASONS = "value_reasons"
#: The top reasons of each customer's churn and value predictions (scored on request).
REASON_COLUMNS: tuple[str, ...] = (CHURN_REASONS, VALUE_REASONS)
SEGMENT = "segment"
SEGMENT_KEY = "segment_key"
#: The behavioral segment of a scored customer and its key in the playbook.
SEGMENT_COLUMNS: tuple[str, ...] = (SEGMENT, SEGMENT_KEY)
CHURN_BAND = "churn_band"
ACTION = "action"
#: The playbook's answer for a scored customer.
PLAYBOOK_COLUMNS: tuple[str, ...] = (CHURN_BAND, ACTION, CHANNEL)
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
#: Which registered model scored the row, and at which cutoff.
MODEL_STAMP_COLUMNS: tuple[str, ...] = (MODEL_NAME, MODEL_VERSION, CUTOFF)


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
