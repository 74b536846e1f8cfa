"""The features and labels `tiercast monitor` reads at every month's start, as one query each over all months."""

from __future__ import annotations

from collections.abc import Iterable

import ibis
import pandas as pd

from tiercast.features.build import Frame, feature_query
from tiercast.features.contract import CUSTOMER_ID
from tiercast.features.cutoff_queries import CutoffQuery
from tiercast.features.labels import label_table

__all__ = ["MonthQueries"]


class MonthQueries:
    """The features and labels a month's rows read, each one :class:`CutoffQuery` over all months: the SQL of a
    query is compiled for its first two months and moved to the others (about 0.4 s saved per query and month)."""

    def __init__(
        self,
        t: ibis.Table,
        con: ibis.BaseBackend,
        *,
        horizon_days: int,
        windows_days: Iterable[int],
        satisfaction: Frame | None,
    ) -> None:
        self._con, self._t = con, t
        if isinstance(satisfaction, pd.DataFrame):  # one table for every month, so their queries read the same one
            satisfaction = ibis.memtable(satisfaction)
        windows = tuple(windows_days)
        self._features = CutoffQuery(
            con,
            lambda c: feature_query(
                t, cutoff=c, windows_days=windows, horizon_days=horizon_days, satisfaction=satisfaction
            ),
        )
        self._labels: dict[int, CutoffQuery] = {}

    def features(self, cutoff: pd.Timestamp) -> pd.DataFrame:
        """:func:`~tiercast.features.build.build_features` at ``cutoff``."""
        return self._features.at(cutoff).to_pandas()

    def labels(self, cutoff: pd.Timestamp, horizon_days: int) -> pd.DataFrame:
        """:func:`~tiercast.features.labels.build_labels` at ``cutoff`` over ``horizon_days``."""
        if horizon_days not in self._labels:

            def build(c: pd.Timestamp) -> ibis.Table:
                return label_table(self._t, cutoff=c, horizon_days=horizon_days).order_by(CUSTOMER_ID)

            self._labels[horizon_days] = CutoffQuery(self._con, build)
        return self._labels[horizon_days].at(cutoff).to_pandas()
