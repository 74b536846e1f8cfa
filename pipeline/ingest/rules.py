"""Judging rows and accounting for them: the first rule each row breaks, the split into accepted and quarantined
rows, the check that accepted + quarantined == read, and :class:`IngestResult`, what reading a source returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

from tiercast.features.contract import AMOUNT, CUSTOMER_ID, ORDER_ID, PRODUCT_ID, TIMESTAMP
from tiercast.pipeline.ingest.common import REASONS, SATISFACTION_REASONS, check_share

TX_SORT = [TIMESTAMP, CUSTOMER_ID, ORDER_ID]  # then source row (stable sort over rows in source order)


# A time of day followed by a UTC offset / Z: the string is tz-aware.


@dataclass(frozen=True, eq=False)
class IngestResult:
    """What :func:`~tiercast.pipeline.ingest.transactions.read_transactions` read: accepted canonical rows,
    quarantined source rows and counts."""

    accepted: pd.DataFrame
    quarantine: pd.DataFrame
    n_read: int
    source: str
    satisfaction: pd.DataFrame | None = None
    #: refund lines (amount < 0) with no purchase of the same customer (and product, when mapped) at or before them
    orphan_refunds: int = 0
    #: review rows rejected while building ``satisfaction`` (review columns as read + source_row + reason)
    satisfaction_quarantine: pd.DataFrame | None = None
    #: further counts: rows read per table (``rows:<table>``), orders without items, orphan refunds per customer...
    details: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def n_accepted(self) -> int:
        return len(self.accepted)

    @property
    def n_quarantined(self) -> int:
        return len(self.quarantine)

    @property
    def quarantine_share(self) -> float:
        return self.n_quarantined / self.n_read if self.n_read else 0.0

    def reason_counts(self) -> dict[str, int]:
        """Quarantined rows per reason, in rule order (reasons with no row left out)."""
        return _reason_counts(self.quarantine, REASONS)

    def satisfaction_reason_counts(self) -> dict[str, int]:
        if self.satisfaction_quarantine is None:
            return {}
        return _reason_counts(self.satisfaction_quarantine, SATISFACTION_REASONS)

    def summary(self) -> str:
        """One line for logs: read / accepted / quarantined by reason / customers / orphan refunds."""
        reasons = ", ".join(f"{k} {v:,}" for k, v in self.reason_counts().items()) or "none"
        return (
            f"{self.source}: read {self.n_read:,} lines, accepted {self.n_accepted:,} "
            f"({self.accepted[CUSTOMER_ID].nunique():,} customers), quarantined {self.n_quarantined:,} "
            f"({self.quarantine_share:.1%}: {reasons}), orphan refunds {self.orphan_refunds:,}"
        )


def _reason_counts(q: pd.DataFrame, order: tuple[str, ...]) -> dict[str, int]:
    counts = q["reason"].value_counts()
    return {r: int(counts[r]) for r in dict.fromkeys(order) if r in counts.index}


# --------------------------------------------------------------------------------------------------------------------
# Rules, splitting, accounting
# --------------------------------------------------------------------------------------------------------------------


def judge_rows(n: int, rules: list[tuple[str, np.ndarray | None]], *, pre: np.ndarray | None = None) -> np.ndarray:
    """Reason per row (object array, None = accepted): ``pre`` first, then the first rule whose mask is True."""
    reason = np.full(n, None, dtype=object)
    for name, mask in reversed(rules):  # reversed: the first rule that applies is written last, so it wins
        if mask is not None:
            reason[np.asarray(mask, dtype=bool)] = name
    if pre is not None:
        pre = np.asarray(pre, dtype=object)
        has_pre = ~pd.isna(pre)
        reason[has_pre] = pre[has_pre]
    return reason


def split_rows(
    raw: pd.DataFrame,
    reason: np.ndarray,
    canonical: pd.DataFrame,
    schema,
    sort_keys: list[str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Accepted canonical rows (sorted, schema-checked once) and the quarantine (source rows + reason)."""
    reason = reason.copy()
    ok = pd.isna(reason)
    accepted = canonical.loc[ok]  # index = source row; raw order, so a stable sort breaks ties by source row
    accepted = accepted.sort_values(sort_keys, kind="stable") if len(accepted) else accepted
    failed = schema_failures(accepted, schema)
    if len(failed):
        reason[failed] = "schema"
        accepted = accepted.drop(index=failed)
    accepted = accepted.reset_index(drop=True)

    bad = ~pd.isna(reason)
    quarantine = raw.loc[bad].rename(columns={c: f"src_{c}" for c in ("source_row", "reason") if c in raw.columns})
    quarantine.insert(len(quarantine.columns), "source_row", np.flatnonzero(bad).astype("int64"))
    quarantine.insert(len(quarantine.columns), "reason", pd.Series(reason[bad], index=quarantine.index, dtype="str"))
    return accepted, quarantine.reset_index(drop=True)


def schema_failures(frame: pd.DataFrame, schema) -> np.ndarray:
    """Source rows (index labels) the schema rejects; a frame-level failure is a bug and raises."""
    import pandera.errors as pe

    try:
        schema.validate(frame, lazy=True)
    except pe.SchemaErrors as err:
        cases = err.failure_cases
        if cases["index"].isna().any():
            frame_level = cases.loc[cases["index"].isna(), ["column", "check"]].drop_duplicates()
            raise RuntimeError(f"canonical frame fails {schema.name} schema: {frame_level.to_dict('records')}") from err
        return np.unique(cases["index"].astype("int64").to_numpy())
    return np.empty(0, dtype="int64")


def check_accounting(accepted: pd.DataFrame, quarantine: pd.DataFrame, n_read: int, where: str) -> None:
    if len(accepted) + len(quarantine) != n_read:
        raise RuntimeError(
            f"{where}: row accounting broken: accepted {len(accepted)} + quarantined {len(quarantine)} != read {n_read}"
        )


def ingest_result(
    accepted: pd.DataFrame, quarantine: pd.DataFrame, n: int, where: str, *, details: dict[str, int], **extra
) -> IngestResult:
    check_accounting(accepted, quarantine, n, where)
    details = dict(details)
    orphans = count_orphan_refunds(accepted)
    details["orphan_refunds_any_product"] = count_orphan_refunds(accepted, by_product=False)
    return IngestResult(
        accepted=accepted,
        quarantine=quarantine,
        n_read=n,
        source=where,
        orphan_refunds=orphans,
        details=MappingProxyType(details),
        **extra,
    )


def check_quarantine_share(
    quarantine: pd.DataFrame,
    n_read: int,
    where: str,
    max_share: float,
    result: IngestResult,
    *,
    section: str = "transactions",
    reviews: bool = False,
) -> None:
    counts = _reason_counts(quarantine, (*REASONS, *SATISFACTION_REASONS))
    check_share(counts, n_read, where, max_share, result, section=section, reviews=reviews)


def naive_run_date(run_date: pd.Timestamp | None, tz: str | None) -> pd.Timestamp | None:
    if run_date is None:
        return None
    ts = pd.Timestamp(run_date)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(tz or "UTC").tz_localize(None)
    return ts


def count_orphan_refunds(accepted: pd.DataFrame, *, by_product: bool = True) -> int:
    """Refund lines (amount < 0) that refer to no purchase (amount > 0) at or before them.

    The earlier purchase must be by the same customer and, when ``by_product`` and the frame has ``product_id``,
    of the same product. Such lines are kept in the accepted frame (real money went back); this counts them.
    """
    keys = [CUSTOMER_ID]
    if by_product and PRODUCT_ID in accepted.columns:
        keys.append(PRODUCT_ID)
    amount = accepted[AMOUNT]
    refunds = accepted.loc[amount < 0, [*keys, TIMESTAMP]]
    if refunds.empty:
        return 0
    first = (
        accepted.loc[amount > 0, [*keys, TIMESTAMP]]
        .groupby(keys, sort=False, dropna=False)[TIMESTAMP]
        .min()
        .rename("_first_purchase")
    )
    joined = refunds.join(first, on=keys)
    orphan = joined["_first_purchase"].isna() | (joined["_first_purchase"] > joined[TIMESTAMP])
    return int(orphan.sum())
