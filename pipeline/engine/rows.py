"""Feature rows and training sets built on the engine and collected to pandas for the single-machine model fit,
on all customers or a seeded sample, with at most N rows per cutoff.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
from tiercast.features.cutoff_queries import CutoffQuery
from tiercast.features.training_set import check_cutoffs, collect_at_cutoffs, labelled_rows, with_cutoff_column
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
    so a training, test and production set sharing cutoffs query each of them once; on DuckDB every set runs
    through one :class:`~tiercast.features.cutoff_queries.CutoffQuery`, so the query is built and compiled for
    the first two cutoffs of the job, not again for each set.
    """

    def __init__(self, con: ibis.BaseBackend, tx: Frame, **common: Any) -> None:
        self.con, self.tx, self.common = con, tx, common
        self._rows: dict[pd.Timestamp, tuple[pd.DataFrame, CutoffSample | None]] = {}
        self._query: CutoffQuery | None = None

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
        if missing and is_spark(self.con):  # the sample cached for these cutoffs is released after them
            built, sampling = build_training_set_on(
                self.con, self.tx, cutoffs=missing, data_end=data_end, holdout_start=holdout_start, **self.common
            )
            counts = {s.cutoff: s for s in sampling.cutoffs}
            for c in missing:
                self._rows[c] = (built.loc[built[CUTOFF] == c], counts.get(c))
        elif missing:
            if self._query is None:
                kw = dict(self.common)
                sample, seed = kw.pop("sample", None), kw.pop("seed", 0)
                t, satisfaction = _engine_tables(
                    self.con, self.tx, sample=sample, seed=seed, satisfaction=kw.pop("satisfaction", None)
                )
                kw["max_rows"] = kw.pop("max_rows_per_cutoff", None)
                rows_at = _rows_at(t, seed=seed, satisfaction=satisfaction, **kw)
                self._query = CutoffQuery(self.con, lambda cutoff: rows_at(cutoff).order_by(CUSTOMER_ID))
            for c in missing:
                df, counts = pop_sampling(with_cutoff_column(self._query.at(c).to_pandas(), c))
                self._rows[c] = (df, counts[0] if counts else None)
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
    t, satisfaction = _engine_tables(con, tx, sample=sample, seed=seed, satisfaction=kwargs.pop("satisfaction", None))
    # On Spark the sample is materialised once (cached by the executors) and read by every cutoff; DuckDB
    # recomputes it cheaply (and ibis 12's release() of a DuckDB cache fails to compile).
    cached = sample is not None and is_spark(con)
    if cached:
        t = t.cache()
    try:
        # the leakage guard checks every cutoff before any is built
        cutoffs = check_cutoffs(
            kwargs.pop("cutoffs"),
            horizon_days=kwargs["horizon_days"],
            data_end=kwargs.pop("data_end"),
            holdout_start=kwargs.pop("holdout_start", None),
        )
        return collect_at_cutoffs(con, _rows_at(t, seed=seed, satisfaction=satisfaction, **kwargs), cutoffs)
    finally:
        if cached:
            t.release()


def _engine_tables(
    con: ibis.BaseBackend, tx: Frame, *, sample: int | None, seed: int, satisfaction: Frame | None
) -> tuple[ir.Table, ir.Table | None]:
    """The transactions on ``con`` (all customers or a seeded sample of them) and the satisfaction table there."""
    t = as_table(to_engine_table(con, tx))  # a pandas frame is shipped to ``con`` once, for every cutoff
    if isinstance(satisfaction, pd.DataFrame):
        satisfaction = to_engine_table(con, satisfaction)
    if sample is not None:
        t = sample_customers(t, sample, seed=seed)
    return t, satisfaction


def _rows_at(
    t: ir.Table,
    *,
    horizon_days: int,
    windows_days: Iterable[int] = DEFAULT_WINDOWS_DAYS,
    satisfaction: ir.Table | None = None,
    max_rows: int | None = None,
    seed: int = 0,
) -> Callable[[pd.Timestamp], ir.Table]:
    """The labelled rows of the transactions ``t`` at a cutoff (unordered, without the cutoff column), at most
    ``max_rows`` of them: capped, each cutoff on its chosen customers' transactions."""
    if max_rows is None:
        table = as_table(t)
        return lambda cutoff: labelled_rows(
            table, cutoff=cutoff, horizon_days=horizon_days, windows_days=windows_days, satisfaction=satisfaction
        )

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

    return rows_at
