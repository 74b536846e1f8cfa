"""Feature rows and training sets built on the engine and collected to pandas for the single-machine model fit,
on all customers or a seeded sample, with at most N rows per cutoff.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from tiercast.features import as_of
from tiercast.features.build import (
    DEFAULT_HORIZON_DAYS,
    DEFAULT_WINDOWS_DAYS,
    Frame,
    as_table,
    execute,
    feature_table,
)
from tiercast.features.contract import CUSTOMER_ID, CUTOFF
from tiercast.features.training_set import build_training_set, check_cutoffs, collect_at_cutoffs, labelled_rows
from tiercast.pipeline.engine.sampling import (
    ROWS_BEFORE,
    CutoffSample,
    Sampling,
    pop_sampling,
    sample_customers,
    sampled_customers,
    with_counts,
)
from tiercast.pipeline.engine.session import is_spark, to_engine_table


def features_on(
    con: ibis.BaseBackend,
    tx: Frame,
    *,
    cutoff: as_of.TimeLike,
    windows_days: Iterable[int] = DEFAULT_WINDOWS_DAYS,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    satisfaction: Frame | None = None,
    sample: int | None = None,
    seed: int = 0,
    max_rows: int | None = None,
) -> tuple[pd.DataFrame, Sampling]:
    """:func:`~tiercast.features.build.build_features` at ``cutoff`` on ``con`` (sorted by customer_id), on all
    customers or a seeded ``sample`` of them (:func:`sample_customers`), with at most ``max_rows`` rows
    (:func:`sample_cutoff_rows`, in the engine), and the :class:`Sampling` of the cap."""
    t = as_table(to_engine_table(con, tx))
    if sample is not None:
        t = sample_customers(t, sample, seed=seed)
    satisfaction = to_engine_table(con, satisfaction) if satisfaction is not None else None
    expr = feature_table(
        t, cutoff=cutoff, windows_days=windows_days, horizon_days=horizon_days, satisfaction=satisfaction
    )  # fmt: skip
    if max_rows is not None:
        chosen = sampled_customers(t, max_rows, cutoff=cutoff, horizon_days=horizon_days, seed=seed)
        expr = feature_table(
            t.semi_join(chosen, CUSTOMER_ID),
            cutoff=cutoff,
            windows_days=windows_days,
            horizon_days=horizon_days,
            satisfaction=satisfaction,
        )
        expr = with_counts(expr, chosen)
    df = execute(expr.order_by(CUSTOMER_ID), con)
    counts: tuple[CutoffSample, ...] = ()
    if ROWS_BEFORE in df.columns:
        before = int(df[ROWS_BEFORE].iloc[0]) if len(df) else 0
        counts = (CutoffSample(as_of.to_cutoff(cutoff), before, len(df)),)
        df = df.drop(columns=[ROWS_BEFORE])
    return df, Sampling(counts)


class CutoffRows:
    """Training sets assembled from labelled rows built once per cutoff on ``con``
    (:func:`build_training_set_on` with ``common``: horizon, windows, samples, satisfaction).

    A cutoff's features and labels do not depend on the set that names it (sets differ only in how far their
    label windows may reach, which :func:`~tiercast.features.training_set.check_cutoffs` still checks per set),
    so a training, test and production set sharing cutoffs query each of them once.
    """

    def __init__(self, con: ibis.BaseBackend, tx: Frame, **common: Any) -> None:
        self.con, self.tx, self.common = con, tx, common
        self._rows: dict[pd.Timestamp, tuple[pd.DataFrame, CutoffSample | None]] = {}

    def training_set(
        self,
        *,
        cutoffs: Iterable[as_of.TimeLike],
        data_end: as_of.TimeLike,
        holdout_start: as_of.TimeLike | None = None,
    ) -> tuple[pd.DataFrame, Sampling]:
        """What :func:`build_training_set_on` returns for these cutoffs (same rows, order, columns and counts)."""
        parsed = check_cutoffs(
            cutoffs, horizon_days=self.common["horizon_days"], data_end=data_end, holdout_start=holdout_start
        )
        missing = [c for c in parsed if c not in self._rows]
        if missing:
            built, sampling = build_training_set_on(
                self.con, self.tx, cutoffs=missing, data_end=data_end, holdout_start=holdout_start, **self.common
            )
            counts = {s.cutoff: s for s in sampling.cutoffs}
            for c in missing:
                self._rows[c] = (built.loc[built[CUTOFF] == c], counts.get(c))
        out = pd.concat([self._rows[c][0] for c in parsed], ignore_index=True)
        return out, Sampling(tuple(s for c in parsed if (s := self._rows[c][1]) is not None))


def build_training_set_on(
    con: ibis.BaseBackend,
    tx: Frame,
    *,
    sample: int | None = None,
    seed: int = 0,
    max_rows_per_cutoff: int | None = None,
    **kwargs: Any,
) -> tuple[pd.DataFrame, Sampling]:
    """:func:`~tiercast.features.training_set.build_training_set` run on ``con`` and collected to pandas, on all
    customers or on a seeded sample of ``sample`` customers (:func:`sample_customers`), with at most
    ``max_rows_per_cutoff`` rows per cutoff (:func:`sample_cutoff_rows`, in the engine before collection), and the
    :class:`Sampling` of the cap (one :class:`CutoffSample` per capped cutoff). ``kwargs``: cutoffs,
    horizon_days, windows_days, data_end, holdout_start, satisfaction."""
    if max_rows_per_cutoff is not None:
        kwargs["max_rows"] = max_rows_per_cutoff
    df, counts = pop_sampling(_build_training_set_on(con, tx, sample=sample, seed=seed, **kwargs))
    return df, Sampling(tuple(counts))


def _build_training_set_on(
    con: ibis.BaseBackend,
    tx: Frame,
    *,
    sample: int | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> pd.DataFrame:
    t = as_table(to_engine_table(con, tx))  # a pandas frame is shipped to ``con`` once, for every cutoff
    if isinstance(kwargs.get("satisfaction"), pd.DataFrame):
        kwargs["satisfaction"] = to_engine_table(con, kwargs["satisfaction"])
    # On Spark the sample is materialised once (cached by the executors) and read by every cutoff; DuckDB
    # recomputes it cheaply (and ibis 12's release() of a DuckDB cache fails to compile).
    cached = sample is not None and is_spark(con)
    if sample is not None:
        t = sample_customers(t, sample, seed=seed)
    if cached:
        t = t.cache()
    max_rows = kwargs.pop("max_rows", None)
    try:
        if max_rows is None:
            return build_training_set(t, con=con, **kwargs)
        # capped: each cutoff on its chosen customers' transactions (the leakage guard checks every cutoff first)
        cutoffs = check_cutoffs(
            kwargs.pop("cutoffs"),
            horizon_days=kwargs["horizon_days"],
            data_end=kwargs["data_end"],
            holdout_start=kwargs.get("holdout_start"),
        )
        horizon_days, satisfaction = kwargs["horizon_days"], kwargs.get("satisfaction")
        windows_days = kwargs.get("windows_days", DEFAULT_WINDOWS_DAYS)

        def rows_at(cutoff: pd.Timestamp) -> ir.Table:
            chosen = sampled_customers(t, max_rows, cutoff=cutoff, horizon_days=horizon_days, seed=seed)
            part = as_table(t.semi_join(chosen, CUSTOMER_ID))
            rows = labelled_rows(
                part,
                cutoff=cutoff,
                horizon_days=horizon_days,
                windows_days=windows_days,
                satisfaction=satisfaction,
                values_of=t,  # the same category codes for every cutoff's customers: one query shape
            )
            return with_counts(rows, chosen)

        return collect_at_cutoffs(con, rows_at, cutoffs)
    finally:
        if cached:
            t.release()
