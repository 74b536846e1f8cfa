"""The cutoff planner: which cutoffs a training run, a backtest or a tier study uses, from the data's span alone.

Pure: dates and numbers in, a frozen :class:`CutoffPlan` out. The pipeline turns its config into
:class:`CutoffRules`; nothing here reads a config, a file or an engine.

Layout of one plan: the test cutoff ``T`` is ``data end - horizon`` unless given; ``rules.n_train`` training
cutoffs ``step_days`` apart end at ``T - horizon``, so no training label window overlaps the test horizon (with
``span_year`` and history enough, as many as make their label windows cover a whole year; when none of their
label windows ends by the validation cutoff, as many more as give each validation cutoff one, and where the history
has none, :func:`short_windows` cuts label windows to end by it); the registered model's refit uses the same steps
ending at ``data end - horizon``. A history too short for a held-out window gives a plan
without a test cutoff (its notes say so); one too short for any label window is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from tiercast.features.contract import TIMESTAMP

__all__ = [
    "CutoffPlan",
    "CutoffRules",
    "HistoryTooShortError",
    "PlanError",
    "data_bounds",
    "plan_cutoffs",
    "rolling_test_plans",
    "short_windows",
    "time_separated",
    "validation_cutoffs",
]


class PlanError(ValueError):
    """The cutoffs asked for do not fit the data (e.g. a test cutoff whose horizon passes the data end)."""


class HistoryTooShortError(PlanError):
    """The data span is too short for any training label window with the given horizon and history."""


@dataclass(frozen=True)
class CutoffRules:
    """How cutoffs are laid out: the label horizon, the step between cutoffs, how many training cutoffs, the
    history a cutoff needs before it, whether training label windows should span a year, an explicit test cutoff,
    and how many of the latest training cutoffs validate (each wants an earlier label window ending by it)."""

    horizon_days: int
    step_days: int = 30
    n_train: int = 6
    min_history_days: int = 60
    span_year: bool = True
    test_cutoff: pd.Timestamp | None = None
    n_validation: int = 1


@dataclass(frozen=True)
class CutoffPlan:
    """The cutoffs of one training run.

    ``train`` (validated on its latest cutoff) fits the model evaluated on ``test``; ``production`` are the
    cutoffs of the registered model's refit, the newest at ``data_end - horizon``. ``test`` is None when the
    history leaves no room for a held-out window (``notes`` say what was dropped).
    """

    data_start: pd.Timestamp
    data_end: pd.Timestamp
    train: tuple[pd.Timestamp, ...]
    test: pd.Timestamp | None
    production: tuple[pd.Timestamp, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def validation(self) -> pd.Timestamp:
        return self.train[-1]


def data_bounds(tx: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First day of data and the midnight after the last transaction (the exclusive end of the data)."""
    return tx[TIMESTAMP].min().normalize(), tx[TIMESTAMP].max().normalize() + pd.Timedelta(days=1)


def time_separated(cutoffs: pd.Series | Sequence[pd.Timestamp], validation: pd.Timestamp, horizon_days: int) -> bool:
    """Whether some training cutoff's label window ends by the validation cutoff (settings can then be chosen on
    a time-separated validation; see :func:`tiercast.models.gbm.stacked.purge_mask`)."""
    ends = pd.to_datetime(pd.Series(list(cutoffs))) + pd.Timedelta(days=horizon_days)
    return bool((ends <= pd.Timestamp(validation)).any())


def validation_cutoffs(
    cutoffs: pd.Series | Sequence[pd.Timestamp], latest: pd.Timestamp, horizon_days: int, n: int
) -> list[pd.Timestamp]:
    """The validation cutoffs: ``latest`` and up to ``n - 1`` training cutoffs before it, as many as leave every
    one of them an earlier, non-validation cutoff whose label window ends by it (a time-separated fold)."""
    cuts = sorted(pd.Timestamp(c) for c in pd.unique(pd.Series(list(cutoffs))) if pd.Timestamp(c) <= latest)
    for k in range(min(n, len(cuts) - 1), 1, -1):
        val, fit = cuts[-k:], cuts[:-k]
        if all(time_separated(fit, v, horizon_days) for v in val):
            return val
    return [pd.Timestamp(latest)]


#: The shortest label window settings are chosen on when no horizon-length one ends by the validation cutoff: a
#: month holds a purchase of most active customers, so the trees have a ranking to learn (Online Retail II, test
#: cutoff 2010-05-14: settings chosen on 30-day windows gave nGini 0.749 against the BTYD model's 0.692).
MIN_LABEL_DAYS = 30


def short_windows(
    cutoffs: pd.Series | Sequence[pd.Timestamp],
    latest: pd.Timestamp,
    horizon_days: int,
    n: int,
    min_days: int = MIN_LABEL_DAYS,
) -> list[tuple[pd.Timestamp, list[tuple[pd.Timestamp, int]]]]:
    """When no training label window ends by the validation cutoff ``latest`` (a history too short to separate
    them): the validation cutoffs, each with the label windows ``(cutoff, days)`` of the earlier training cutoffs
    cut to end by it, at most a horizon and at least ``min_days`` long. The validation
    cutoffs are ``latest`` and up to ``n - 1`` cutoffs before it, as many as leave every one such a window
    (:func:`validation_cutoffs` with ``min_days`` windows). Empty when a horizon-length window ends by ``latest``
    already or none of ``min_days`` does."""
    cuts = sorted(pd.Timestamp(c) for c in pd.unique(pd.Series(list(cutoffs))) if pd.Timestamp(c) <= latest)
    latest = pd.Timestamp(latest)
    if time_separated(cuts[:-1], latest, horizon_days) or not time_separated(cuts[:-1], latest, min_days):
        return []
    out = []
    for v in validation_cutoffs(cuts, latest, min_days, n):
        windows = [(c, min(horizon_days, (v - c).days)) for c in cuts if c + pd.Timedelta(days=min_days) <= v]
        out.append((v, windows))
    return out


#: Cutoffs, oldest first.
Cutoffs = tuple[pd.Timestamp, ...]


def _steps_back(last: pd.Timestamp, earliest: pd.Timestamp, rules: CutoffRules) -> tuple[pd.Timestamp, ...]:
    """``rules.n_train`` cutoffs ``step_days`` apart ending at ``last``, none before ``earliest``; with
    ``span_year`` and history enough, as many as make their label windows cover a whole year (every season appears
    in the labels)."""
    n = rules.n_train
    year = int(np.ceil((365 - min(rules.horizon_days, 365)) / rules.step_days)) + 1
    if rules.span_year and last - pd.Timedelta(days=rules.step_days * (year - 1)) >= earliest:
        n = max(n, year)
    cuts = [last - pd.Timedelta(days=rules.step_days * i) for i in range(n)]
    return tuple(sorted(t for t in cuts if t >= earliest))


def _reach_back(train: Cutoffs, earliest: pd.Timestamp, rules: CutoffRules) -> Cutoffs:
    """When no label window ends by the validation cutoff (a horizon longer than the cutoffs span), earlier
    training cutoffs, ``step_days`` apart and none before ``earliest``, until the earliest of the latest
    ``n_validation`` cutoffs has one, so that settings are chosen on time-separated folds
    (:func:`validation_cutoffs`) instead of the models being the BTYD model alone. Unchanged when the validation
    is time-separated already or the history cannot make it so."""
    if len(train) < 2 or time_separated(train[:-1], train[-1], rules.horizon_days):
        return train
    k = min(rules.n_validation, len(train) - 1)
    horizon, step = pd.Timedelta(days=rules.horizon_days), pd.Timedelta(days=rules.step_days)
    cuts = list(train)
    while cuts[0] + horizon > cuts[-k] and cuts[0] - step >= earliest:
        cuts.insert(0, cuts[0] - step)
    return tuple(cuts) if time_separated(cuts[:-1], cuts[-1], rules.horizon_days) else train


def _test_cutoff(start: pd.Timestamp, end: pd.Timestamp, rules: CutoffRules) -> pd.Timestamp | None:
    """The given test cutoff (checked against the data end), else ``end - horizon`` when a held-out window fits
    after the history a training cutoff needs, else None."""
    horizon = pd.Timedelta(days=rules.horizon_days)
    if rules.test_cutoff is not None:
        test = pd.Timestamp(rules.test_cutoff)
        if test + horizon > end:
            raise PlanError(f"test cutoff {test.date()} + {rules.horizon_days} days passes the data end {end.date()}")
        return test
    earliest = start + pd.Timedelta(days=rules.min_history_days)
    return end - horizon if end - 2 * horizon >= earliest else None


def _days(n: int) -> str:
    """``n`` with the word day, singular for one: "1 day", "90 days"."""
    return f"{n} day" if n == 1 else f"{n} days"


def plan_cutoffs(start: pd.Timestamp, end: pd.Timestamp, rules: CutoffRules) -> CutoffPlan:
    """The plan for data from the day ``start`` to the exclusive end ``end`` (see the module's layout).

    Raises :class:`HistoryTooShortError` when not even one label window fits after ``min_history_days``.
    """
    horizon = pd.Timedelta(days=rules.horizon_days)
    earliest = start + pd.Timedelta(days=rules.min_history_days)
    needed = rules.min_history_days + rules.horizon_days
    span = (end - start).days
    if end - horizon < earliest:
        raise HistoryTooShortError(
            f"the data covers {_days(span)} ({start.date()} to {(end - pd.Timedelta(days=1)).date()}); training "
            f"needs at least {_days(needed)} (cutoffs.min_history_days={rules.min_history_days} + "
            f"horizon_days={rules.horizon_days}), and {needed + rules.horizon_days} for a held-out test window"
        )
    production = _steps_back(end - horizon, earliest, rules)
    test = _test_cutoff(start, end, rules)
    if test is None:
        leave = "leaves" if span == 1 else "leave"
        note = (
            f"{_days(span)} of history {leave} no held-out test window (that needs {needed + rules.horizon_days}): "
            f"no test metrics; trained on {len(production)} label window(s) ending by {end.date()}"
            + (" (the BTYD model alone: no validation cutoff)" if len(production) == 1 else "")
        )
        more = _train_notes(production, rules) if len(production) > 1 else ()
        return CutoffPlan(start, end, train=production, test=None, production=production, notes=(note, *more))
    train = _reach_back(_steps_back(test - horizon, earliest, rules), earliest, rules)
    if not train:
        raise HistoryTooShortError(
            f"no training cutoff fits between {earliest.date()} and {(test - horizon).date()} before the test "
            f"cutoff {test.date()}: move cutoffs.test_cutoff later or shorten horizon_days"
        )
    return CutoffPlan(start, end, train=train, test=test, production=production, notes=_train_notes(train, rules))


def _train_notes(train: tuple[pd.Timestamp, ...], rules: CutoffRules) -> tuple[str, ...]:
    if len(train) == 1:
        return (
            "one training label window before the test cutoff: no validation cutoff, so the GBM correction is "
            "dropped (the BTYD model alone)",
        )
    if time_separated(train[:-1], train[-1], rules.horizon_days):
        return ()
    cut = short_windows(train, train[-1], rules.horizon_days, rules.n_validation)
    if not cut:
        return (
            f"no training label window ends by the validation cutoff {train[-1].date()}: the GBM correction is "
            "dropped (the BTYD model alone)",
        )
    days = sorted({d for _, windows in cut for _, d in windows})
    span = f"{days[0]}" if len(days) == 1 else f"{days[0]} to {days[-1]}"
    by = "it" if len(cut) == 1 else f"each of the {len(cut)} validation cutoffs"
    return (
        f"no {rules.horizon_days}-day training label window ends by the validation cutoff {train[-1].date()}: "
        f"settings are chosen on label windows cut to end by {by} "
        f"({span} days), then the trees are refitted on the {rules.horizon_days}-day windows",
    )


def rolling_test_plans(start: pd.Timestamp, end: pd.Timestamp, rules: CutoffRules, n_tests: int) -> list[CutoffPlan]:
    """Plans of up to ``n_tests`` test cutoffs ``step_days`` apart ending at the plan's test cutoff, oldest first
    (a backtest or a tier study); test cutoffs that leave no training cutoff are skipped.

    Raises :class:`HistoryTooShortError` when the history leaves no held-out test window at all.
    """
    first = plan_cutoffs(start, end, rules)
    if first.test is None:
        raise HistoryTooShortError(f"{first.notes[0]}; a backtest needs a test window")
    plans = []
    for i in range(n_tests - 1, -1, -1):
        when = first.test - pd.Timedelta(days=rules.step_days * i)
        try:
            plans.append(plan_cutoffs(start, end, replace(rules, test_cutoff=when)))
        except ValueError:
            continue
    return plans
