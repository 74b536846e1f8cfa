"""Seeded samples taken in the engine before collection: a sample of customers, and at most N customer rows per
cutoff stratified on recent spend (the same customers on every engine and run).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pandas as pd

from tiercast.features import as_of
from tiercast.features.contract import CUSTOMER_ID, CUTOFF, TIMESTAMP

# --------------------------------------------------------------------------------------------------------------------
# Training sets
# --------------------------------------------------------------------------------------------------------------------


def sample_customers(tx: ir.Table, n: int, *, seed: int = 0) -> ir.Table:
    """The transactions of ``n`` customers chosen by the MD5 of ``"<seed>:<customer_id>"`` (smallest first): the
    same customers on every engine and run, all of each chosen customer's history, and a new seed a new sample."""
    if n <= 0:
        raise ValueError(f"sample size must be positive, got {n}")
    ids = tx.select(CUSTOMER_ID).distinct()
    key = (ibis.literal(f"{seed}:") + ids.customer_id).hexdigest("md5")
    chosen = ids.mutate(_key=key).order_by(["_key", CUSTOMER_ID]).limit(n).select(CUSTOMER_ID)
    return tx.semi_join(chosen, CUSTOMER_ID)


#: Quantile bins of positive spend that stratify a cutoff's sample (beside the customers without spend).
SAMPLE_SPEND_BINS = 4


#: Column carrying a cutoff's row count before sampling through the query (dropped after collection).
ROWS_BEFORE = "_rows_before_sampling"


def sample_cutoff_rows(
    rows: ir.Table, max_rows: int, *, value_column: str, cutoff: as_of.TimeLike, seed: int = 0
) -> ir.Table:
    """At most ``max_rows`` of one cutoff's customer rows, chosen in the engine, and the row count before
    sampling in :data:`ROWS_BEFORE`.

    Stratified on value: customers without positive ``value_column`` (spend in the horizon window before the
    cutoff), and :data:`SAMPLE_SPEND_BINS` quantile bins of the positive ones; each stratum keeps its share of
    the rows (``floor(n_stratum * max_rows / n)``), so the sample has the population's value mix and needs no
    weights. Within a stratum the customers with the smallest MD5 of ``"<seed>:<cutoff>:<customer_id>"`` are
    kept: seeded, the same on every engine, a new draw per cutoff. With ``n <= max_rows`` every row is kept.
    """
    if max_rows <= 0:
        raise ValueError(f"max_rows must be positive, got {max_rows}")
    day = as_of.to_cutoff(cutoff).isoformat()
    spend = rows[value_column].cast("float64").coalesce(0.0)
    positive = spend > 0
    ranked = rows.mutate(
        _positive=positive,
        _bin=ibis.ntile(SAMPLE_SPEND_BINS).over(group_by=positive, order_by=[spend, rows.customer_id]),
        _key=(ibis.literal(f"{seed}:{day}:") + rows.customer_id.cast("string")).hexdigest("md5"),
        **{ROWS_BEFORE: rows.customer_id.count().over()},
    )
    stratum = ranked._positive.ifelse(ranked._bin + 1, 0)
    ranked = ranked.mutate(_stratum=stratum)
    ranked = ranked.mutate(
        _rank=ibis.row_number().over(group_by=ranked._stratum, order_by=[ranked._key, ranked.customer_id]),
        _n_stratum=ranked.count().over(group_by=ranked._stratum),
    )
    n = ranked[ROWS_BEFORE].cast("int64")
    keep = (ranked._rank + 1) * n <= ranked._n_stratum.cast("int64") * max_rows
    return ranked.filter(keep).drop("_positive", "_bin", "_key", "_stratum", "_rank", "_n_stratum")


def sampled_customers(
    t: ir.Table, max_rows: int, *, cutoff: as_of.TimeLike, horizon_days: int, seed: int = 0
) -> ir.Table:
    """The customers :func:`sample_cutoff_rows` keeps at ``cutoff`` (``customer_id`` and :data:`ROWS_BEFORE`),
    from one cheap pass over the transactions: every customer with a transaction before the cutoff, stratified on
    the exact net amount of their lines in the horizon window before it. The features and labels are then built
    for these customers' transactions alone (every feature and label is a function of one customer's rows), so
    a capped cutoff costs one aggregation over all transactions instead of the whole feature query."""
    lines = as_of.before(t, cutoff=cutoff)
    start = as_of.to_cutoff(cutoff) - pd.Timedelta(days=int(horizon_days))
    recent = lines.timestamp >= ibis.literal(start.to_pydatetime(), type=TIMESTAMP)
    per = lines.group_by(CUSTOMER_ID).aggregate(
        _spend=lines.amount.cast(dt.Decimal(38, 6)).sum(where=recent).cast("float64")
    )
    chosen = sample_cutoff_rows(per, max_rows, value_column="_spend", cutoff=cutoff, seed=seed)
    return chosen.select(CUSTOMER_ID, ROWS_BEFORE)


def with_counts(rows: ir.Table, chosen: ir.Table) -> ir.Table:
    """The rows of the chosen customers with their cutoff's :data:`ROWS_BEFORE`."""
    joined = rows.join(chosen, CUSTOMER_ID)
    return joined.drop("customer_id_right") if "customer_id_right" in joined.columns else joined


@dataclass(frozen=True)
class CutoffSample:
    """How many customer rows a cutoff had and how many were kept by :func:`sample_cutoff_rows`."""

    cutoff: pd.Timestamp
    rows_before: int
    rows_after: int

    def record(self) -> dict[str, Any]:
        """Plain JSON values, the cutoff as ISO text."""
        return {CUTOFF: self.cutoff.isoformat(), "rows_before": self.rows_before, "rows_after": self.rows_after}


@dataclass(frozen=True)
class Sampling:
    """What the per-cutoff cap did to a set of collected rows, returned beside them: one :class:`CutoffSample` per
    capped cutoff (none when no cap was set)."""

    cutoffs: tuple[CutoffSample, ...] = ()

    def records(self) -> list[dict[str, Any]]:
        """:meth:`CutoffSample.record` of each cutoff."""
        return [c.record() for c in self.cutoffs]

    def to_json(self) -> str:
        return json.dumps(self.records(), indent=2)


def pop_sampling(df: pd.DataFrame) -> tuple[pd.DataFrame, list[CutoffSample]]:
    """The collected rows without :data:`ROWS_BEFORE`, and the per-cutoff counts it carried."""
    if ROWS_BEFORE not in df.columns:
        return df, []
    counts = []
    if len(df):
        groups = df.groupby(CUTOFF, sort=True)[ROWS_BEFORE] if CUTOFF in df.columns else None
        pairs = groups.agg(["first", "size"]).itertuples() if groups is not None else []
        counts = [CutoffSample(pd.Timestamp(c), int(first), int(size)) for c, first, size in pairs]
    return df.drop(columns=[ROWS_BEFORE]), counts
