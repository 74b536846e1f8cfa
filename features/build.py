"""The customer feature set at a cutoff: assembles the RFM, tenure and churn-signal definitions into one Ibis
expression and runs it (DuckDB by default).

The expression is a few set-based passes: lines -> orders (one narrow aggregation: time, net, gross, refund lines),
one window pass over orders (purchase-day flags and gaps), orders -> customers (one aggregation with every
customer-level sum, windows included), then per-customer arithmetic; product breadth and satisfaction are joined on
when present.
"""

from __future__ import annotations

from collections.abc import Iterable

import ibis
import ibis.expr.types as ir
import pandas as pd

from tiercast.features import as_of, breadth, churn_signals, rfm, tenure
from tiercast.features.contract import (
    AMOUNT,
    CATEGORY,
    CHANNEL,
    CUSTOMER_ID,
    IS_COMPLAINT,
    OPTIONAL_TRANSACTION_COLUMNS,
    ORDER_ID,
    PRODUCT_ID,
    QUANTITY,
    REVIEW_SCORE,
    TIMESTAMP,
    TRANSACTION_COLUMNS,
    YEAR_AGO_COLUMNS,
    spend_column,
)

STRING_COLUMNS = (CUSTOMER_ID, ORDER_ID, PRODUCT_ID, CATEGORY, CHANNEL)
DEFAULT_WINDOWS_DAYS = (30, 90, 180, 365)
DEFAULT_HORIZON_DAYS = 90

Frame = pd.DataFrame | ir.Table


def as_table(
    frame: Frame,
    *,
    required: Iterable[str] = TRANSACTION_COLUMNS,
    optional: Iterable[str] = OPTIONAL_TRANSACTION_COLUMNS,
    what: str = "transactions",
) -> ir.Table:
    """The frame as an Ibis table of the known columns with canonical types (pandas frames become memtables; the
    frame itself is never modified). Raises ValueError for a missing column or a time-zone-aware timestamp."""
    required, optional = tuple(required), tuple(optional)
    columns = list(frame.columns)
    missing = [c for c in required if c not in columns]
    if missing:
        raise ValueError(f"{what} lack required columns {missing}; got {columns}")
    keep = [c for c in (*required, *optional) if c in columns]
    t = ibis.memtable(frame[keep]) if isinstance(frame, pd.DataFrame) else frame.select(keep)
    casts: dict[str, ir.Value] = {}
    for col in keep:
        typ = t[col].type()
        if col == TIMESTAMP:
            if typ.is_timestamp() and typ.timezone is not None:
                raise ValueError(f"{what}: timestamp must be naive, got time zone {typ.timezone!r}")
            if not typ.is_timestamp():
                casts[col] = t[col].cast(TIMESTAMP)
        elif col in STRING_COLUMNS and not typ.is_string():
            casts[col] = t[col].cast("string")
        elif col in (AMOUNT, QUANTITY) and not typ.is_float64():
            casts[col] = t[col].cast("float64")
    return t.mutate(**casts) if casts else t


def feature_windows(windows_days: Iterable[int], horizon_days: int) -> tuple[int, ...]:
    """Sorted distinct window lengths: ``windows_days`` plus the horizon and, with a 365-day window and a shorter
    horizon, ``365 - horizon``: the difference of the two is the horizon-length window a year before the next one
    (last year's same season, read by the seasonal BTYD index)."""
    windows = {int(w) for w in windows_days} | {int(horizon_days)}
    if 365 in windows and 0 < int(horizon_days) < 365:
        windows.add(365 - int(horizon_days))
    if any(w <= 0 for w in windows):
        raise ValueError(f"windows and horizon must be positive days, got {sorted(windows)}")
    return tuple(sorted(windows))


def feature_names(
    *, windows_days: Iterable[int], horizon_days: int, optional: Iterable[str] = (), satisfaction: Iterable[str] = ()
) -> list[str]:
    """Output columns, in order, for the given windows, optional transaction columns and satisfaction columns."""
    windows = feature_windows(windows_days, horizon_days)
    names = [
        CUSTOMER_ID,
        "recency_days",
        "tenure_days",
        "frequency_orders",
        "purchase_days",
        "repeat_purchase_days",
        "first_to_last_days",
        "repeat_spend_mean",
        "day_spend_mean",
        "monetary_total",
        "monetary_mean_order",
        "monetary_max_order",
        *(f"orders_{w}d" for w in windows),
        *(spend_column(w) for w in windows),
        "gap_mean_days",
        "gap_std_days",
        "overdue_ratio",
        "spend_trend",
        "refund_count",
        "refund_amount",
        "refund_share",
    ]
    names += list(YEAR_AGO_COLUMNS) if tenure.has_year_ago(windows, horizon_days) else []
    optional = set(optional)
    names += [name for src, name in breadth.BREADTH_COLUMNS.items() if src in optional]
    satisfaction = set(satisfaction)
    names += [c for c in ("review_count", "review_score_mean") if REVIEW_SCORE in satisfaction]
    names += ["complaint_count"] if IS_COMPLAINT in satisfaction else []
    return names


def feature_table(
    t: ir.Table,
    *,
    cutoff: as_of.TimeLike,
    windows_days: Iterable[int] = DEFAULT_WINDOWS_DAYS,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    satisfaction: Frame | None = None,
    values_of: ir.Table | None = None,
) -> ir.Table:
    """The feature expression (unexecuted, rows unordered) for a canonical transaction table; see
    :func:`build_features`. ``values_of``: the table whose categories and channels number the bits of the breadth
    counts (:func:`~tiercast.features.breadth.breadth`), ``t`` by default; a part of a larger table passes the
    whole, so the query of every part has the same shape."""
    cutoff = as_of.to_cutoff(cutoff)
    windows = feature_windows(windows_days, horizon_days)
    horizon_days = int(horizon_days)

    lines = as_of.before(t, cutoff=cutoff)
    orders = rfm.to_orders(lines, **churn_signals.order_columns(lines))
    orders = tenure.flag_purchase_days(orders)
    year_ago = tenure.has_year_ago(windows, horizon_days)
    c = orders.group_by(CUSTOMER_ID).aggregate(
        **rfm.customer_columns(orders, cutoff=cutoff, windows_days=windows),
        **tenure.customer_columns(orders),
        **churn_signals.customer_columns(orders, cutoff=cutoff, horizon_days=horizon_days),
        **(tenure.year_ago_customer_columns(orders, cutoff=cutoff) if year_ago else {}),
    )
    c = c.select(
        CUSTOMER_ID,
        **rfm.derived_columns(c, cutoff=cutoff, windows_days=windows),
        **tenure.derived_columns(c, cutoff=cutoff),
        **churn_signals.derived_columns(c, cutoff=cutoff, horizon_days=horizon_days),
        **(tenure.year_ago_derived_columns(c, cutoff=cutoff) if year_ago else {}),
    )

    optional = [col for col in OPTIONAL_TRANSACTION_COLUMNS if col in t.columns]
    sat_columns: list[str] = []
    extras = [breadth.breadth(lines, values_of=t if values_of is None else values_of)]
    if satisfaction is not None:
        sat = as_table(
            satisfaction,
            required=churn_signals.SATISFACTION_REQUIRED,
            optional=(IS_COMPLAINT,),
            what="satisfaction reviews",
        )
        sat_columns = list(sat.columns)
        extras.append(churn_signals.satisfaction(sat, cutoff=cutoff))
    for extra in extras:
        if extra is not None:
            c = c.left_join(extra, CUSTOMER_ID).drop("customer_id_right")
    names = feature_names(windows_days=windows, horizon_days=horizon_days, optional=optional, satisfaction=sat_columns)
    # 0 for customers without reviews / without a bought line
    counts = {"review_count", "complaint_count", *breadth.BREADTH_COLUMNS.values()}
    return c.select(**{name: c[name].coalesce(0.0) if name in counts else c[name] for name in names})


def feature_query(
    tx: Frame,
    *,
    cutoff: as_of.TimeLike,
    windows_days: Iterable[int] = DEFAULT_WINDOWS_DAYS,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    satisfaction: Frame | None = None,
) -> ir.Table:
    """The rows of :func:`build_features` as one unexecuted expression, sorted by ``customer_id``: to collect, or to
    write from the engine (:func:`tiercast.pipeline.ingest.loader.write_features_at`)."""
    return feature_table(
        as_table(tx), cutoff=cutoff, windows_days=windows_days, horizon_days=horizon_days, satisfaction=satisfaction
    ).order_by(CUSTOMER_ID)


def execute(expr: ir.Table, con: ibis.BaseBackend | None = None) -> pd.DataFrame:
    """Run an expression (on ``con``, else on the backend its tables are bound to) and return pandas, via Arrow."""
    table = con.to_pyarrow(expr) if con is not None else expr.to_pyarrow()
    return table.to_pandas()


def build_features(
    tx: Frame,
    *,
    cutoff: as_of.TimeLike,
    windows_days: Iterable[int] = DEFAULT_WINDOWS_DAYS,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    satisfaction: Frame | None = None,
    con: ibis.BaseBackend | None = None,
) -> pd.DataFrame:
    """One row per customer with a transaction before ``cutoff``, sorted by ``customer_id``.

    ``tx`` is a canonical transaction frame (pandas or Ibis). The first column is ``customer_id`` (str); every other
    column is float64, NaN where undefined. Windows are ``windows_days`` plus ``horizon_days``, each
    ``[cutoff - w days, cutoff)``. Runs on ``con``, else on an in-memory DuckDB for pandas input (an Ibis table runs
    on the backend it is bound to). Column definitions: :mod:`~tiercast.features.rfm`,
    :mod:`~tiercast.features.tenure`, :mod:`~tiercast.features.churn_signals`. Pandas frames on a DuckDB ``con``
    (without satisfaction) share one compiled query per shape of frame (:mod:`~tiercast.features.frame_queries`),
    so calling this in a loop on one connection costs DuckDB's time, not Ibis' compilation, per call.
    """
    if con is not None and isinstance(tx, pd.DataFrame) and satisfaction is None:
        # a frame on the caller's connection: the query is compiled once per shape of frame, not once per call
        from tiercast.features.frame_queries import run_on_frame

        t, windows = as_table(tx), tuple(windows_days)
        key = ("features", tuple(t.schema().items()), windows, horizon_days)

        def build(at: pd.Timestamp) -> ir.Table:
            return feature_table(t, cutoff=at, windows_days=windows, horizon_days=horizon_days).order_by(CUSTOMER_ID)

        return run_on_frame(con, t, key, build, as_of.to_cutoff(cutoff)).to_pandas()
    expr = feature_query(
        tx, cutoff=cutoff, windows_days=windows_days, horizon_days=horizon_days, satisfaction=satisfaction
    )
    if con is None and isinstance(tx, pd.DataFrame):
        con = ibis.duckdb.connect()
    return execute(expr, con)
