"""The tier study: what the configured tier scheme proposes on the configured data, how well predicted tiers beat
persistence on a backtest, how stable the scheme is, and how the alternative schemes compare.

Time layout: ``n_test`` test cutoffs ``cutoffs.step_days`` apart, the latest being the training pipeline's test
cutoff (``data end - horizon`` unless configured). For each test cutoff T the models are fitted exactly as
``tiercast train`` fits them (:func:`~tiercast.features.cutoff_plan.plan_cutoffs` with ``test_cutoff = T`` and
:func:`~tiercast.pipeline.jobs.train.fit_scorer`): every training label window ends at or before T, and every scheme is
fitted on the validation cutoff ``T - horizon``. Then, for the customers with history before T:

* current tier = the scheme on realized value of ``[T - horizon, T)`` (the persistence baseline: the tier stays),
* predicted tier = the scheme's rank mapping of the value model's prediction, two ways: to the scheme's shares
  (what ``fit_scorer`` does today) and to the shares of the tiers the training cutoffs' customers actually reached
  over their horizon (``fit_predictions(..., realized=...)``, :data:`PROPOSED`; also used for the alternatives),
* realized tier = the scheme on realized value of ``[T, T + horizon)``.

Schemes compared (same population, same cutoffs): the configured clustering scheme, the clustering with frequency
and tenure, ABC 80/15/5, fixed quantiles, RFM quintile scores (persistence only: future recency and frequency are
not predicted) and a loyalty programme with the configured scheme's boundaries as points thresholds (1 point per
unit of spend, one horizon per period, one period of grace). Accuracy rises as tiers get fewer and coarser, so
compare schemes on kappa and on each scheme's gain over its own persistence baseline.

Stability: the configured scheme (and each alternative) refitted on bootstrap resamples of the latest validation
population, and refitted at consecutive cutoffs ``step_days`` apart; every refit assigns the same reference
population (the latest test cutoff's customers), so the adjusted Rand index measures the scheme, not customers
moving.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from tiercast.features.build import build_features
from tiercast.features.contract import (
    CHURNED,
    CUSTOMER_ID,
    CUTOFF,
    FUTURE_VALUE,
    PREDICTED_TIER,
    PREDICTED_VALUE,
    SEGMENT,
    TIER,
    feature_columns,
    spend_column,
)
from tiercast.features.cutoff_plan import CutoffPlan, rolling_test_plans
from tiercast.models.evaluation import paired_bootstrap, tier_code_metrics, tier_metrics
from tiercast.models.tiers.alternatives import ABCScheme, LoyaltyScheme, QuantileScheme, ScoreBandScheme
from tiercast.models.tiers.analysis import bootstrap_stability, migration_matrix, refit_stability, tier_summary
from tiercast.models.tiers.scheme import TierScheme, names_for_k
from tiercast.pipeline.config import Config
from tiercast.pipeline.engine.rows import build_training_set_on
from tiercast.pipeline.ingest.loader import Transactions, load_transactions
from tiercast.pipeline.jobs.model_fit import behavior_segments, fit_scorer, labels_from
from tiercast.pipeline.jobs.results import SchemeFit, TierStudy

BEHAVIOR = ("frequency_orders", "tenure_days")
PROPOSED = "predicted (realized shares)"
Context = dict[str, Any]


@dataclass(frozen=True)
class _Spec:
    """How one scheme is built and fed: ``make(main)`` gives an unfitted scheme (``main`` is the configured scheme
    fitted on the same rows); ``context(rows, when)`` its extra fit inputs for feature rows at a cutoff;
    ``assign_context`` whether assignment takes them too; ``predicts`` whether it has a predicted tier."""

    name: str
    make: Callable[[TierScheme], Any]
    context: Callable[[pd.DataFrame, pd.Timestamp], Context] = lambda rows, when: {}
    assign_context: bool = True
    predicts: bool = True


def _with_test_cutoff(config: Config, when: pd.Timestamp) -> Config:
    return config.model_copy(update={"cutoffs": config.cutoffs.model_copy(update={"test_cutoff": str(when.date())})})


class _Data:
    """Feature rows with labels at every cutoff of the study (built once), and horizon-length period spends."""

    def __init__(self, loaded: Transactions, config: Config, cutoffs: list[pd.Timestamp]) -> None:
        self.con, self.tx, self.satisfaction = loaded.con, loaded.table, loaded.engine_satisfaction()
        self.start, self.end = loaded.bounds
        self.h = config.horizon_days
        self.horizon = pd.Timedelta(days=self.h)
        self.windows = config.features.windows_days
        self.value_col = spend_column(self.h)
        self.grid, _ = build_training_set_on(  # no per-cutoff cap here: its Sampling is empty
            self.con,
            self.tx,
            cutoffs=cutoffs,
            horizon_days=self.h,
            windows_days=self.windows,
            data_end=self.end,
            satisfaction=self.satisfaction,
        )
        self._spend = {c: g.set_index(CUSTOMER_ID)[self.value_col] for c, g in self.grid.groupby(CUTOFF)}

    def at(self, when: pd.Timestamp) -> pd.DataFrame:
        return self.grid[self.grid[CUTOFF] == when].reset_index(drop=True)

    def features_at(self, when: pd.Timestamp) -> pd.DataFrame:
        """Features (no labels) at any cutoff, indexed by customer."""
        return build_features(
            self.tx,
            cutoff=when,
            windows_days=self.windows,
            horizon_days=self.h,
            satisfaction=self.satisfaction,
            con=self.con,
        ).set_index(CUSTOMER_ID)

    def value(self, rows: pd.DataFrame, column: str | None = None) -> np.ndarray:
        """Realized value (floored at 0) of ``[when - h, when)``, or of another column such as future_value."""
        return np.clip(rows[column or self.value_col].to_numpy(dtype=float, na_value=0.0), 0.0, None)

    def history(self, rows: pd.DataFrame, when: pd.Timestamp) -> np.ndarray:
        """Spend of each full horizon-length period before ``[when - h, when)``, oldest first (0 when absent)."""
        n = int((when - self.horizon - self.start) / self.horizon)
        cols = []
        for end in (when - self.horizon * j for j in range(n, 0, -1)):
            if end not in self._spend:
                self._spend[end] = self.features_at(end)[self.value_col]
            cols.append(self._spend[end].reindex(rows[CUSTOMER_ID]).fillna(0.0).to_numpy(dtype=float))
        return np.column_stack(cols) if cols else np.zeros((len(rows), 0))


@dataclass
class _Backtest:
    """One test cutoff: the fitted configured scheme, its tiers and the per-scheme results."""

    plan: CutoffPlan
    scheme: TierScheme
    test: pd.DataFrame
    predicted_value: np.ndarray
    predicted_tier: np.ndarray
    metrics: list[dict[str, Any]]
    differences: list[dict[str, Any]]
    schemes: list[dict[str, Any]]
    fitted: dict[str, tuple[Any, np.ndarray]]  # scheme name -> (fitted scheme, current codes)


def tier_study(config: Config, *, n_test: int = 3, n_boot: int = 20, data: Transactions | None = None) -> TierStudy:
    """Run the study on the configured transactions (or already loaded ``data``); see the module docstring.

    Returns a :class:`~tiercast.pipeline.jobs.results.TierStudy`.
    """
    loaded = data if data is not None else load_transactions(config)
    plans = rolling_test_plans(*loaded.bounds, config.cutoff_rules(), n_test)
    if not plans:
        raise ValueError("no test cutoff leaves two training cutoffs; shorten horizon_days or cutoffs.step_days")
    data = _Data(loaded, config, sorted({c for p in plans for c in (*p.train, p.test)}))
    specs = _specs(config, data)
    runs = [_backtest(data, plan, config, specs, n_boot) for plan in plans]
    last = runs[-1]

    names = list(last.scheme.names_)
    current = last.scheme.assign(data.value(last.test))
    tiers = tier_summary(
        current,
        data.value(last.test),
        names,
        n_orders=last.test[f"orders_{data.h}d"].to_numpy(dtype=float, na_value=0.0),
        retained=1.0 - last.test[CHURNED].to_numpy(dtype=float),
    )
    tiers.insert(1, "min_boundary", [*last.scheme.boundaries_.tolist(), 0.0])
    bases = {c: clone(last.scheme).fit(data.value(rows)) for c, rows in data.grid.groupby(CUTOFF)}
    stability = {spec.name: _stability(data, spec, last, bases, config.seed, n_boot) for spec in specs}
    segments = behavior_segments(last.test, config.seed)
    segment_tiers = pd.DataFrame()  # none when the customers cannot be segmented (behavior_segments warns)
    if segments is not None:
        segment_tiers = pd.crosstab(
            pd.Series(segments.predict(last.test), name=SEGMENT), pd.Series(current, name=TIER)
        ).reindex(index=list(segments.names_), columns=names, fill_value=0)
    per_cutoff = pd.DataFrame([row for run in runs for row in run.schemes])
    boot, consecutive = stability[specs[0].name]
    return TierStudy(
        horizon_days=data.h,
        test_cutoffs=tuple(p.test.date() for p in plans),
        validation_cutoff=last.plan.validation.date(),
        scheme=SchemeFit(
            k=int(last.scheme.k_), silhouette_by_k=last.scheme.silhouette_by_k_, tiers=last.scheme.describe()
        ),
        tiers=tiers,
        tier_metrics=pd.DataFrame([row for run in runs for row in run.metrics]),
        tier_differences=pd.DataFrame([row for run in runs for row in run.differences]),
        migration_counts=migration_matrix(current, last.predicted_tier, names),
        migration_revenue=migration_matrix(current, last.predicted_tier, names, weights=last.predicted_value),
        bootstrap=boot,
        consecutive=consecutive,
        schemes=_compare(specs, per_cutoff, last, data.value(last.test), stability),
        scheme_metrics=per_cutoff,
        segments=segments.profile_ if segments is not None else pd.DataFrame(),
        segment_tiers=segment_tiers,
    )


def _backtest(data: _Data, plan: CutoffPlan, config: Config, specs: list[_Spec], n_boot: int) -> _Backtest:
    """Fit as ``tiercast train`` does for test cutoff ``plan.test``; score the tiers of every scheme there."""
    train_rows = data.grid[data.grid[CUTOFF].isin(plan.train)]
    val_rows, test_rows = data.at(plan.validation), data.at(plan.test)
    scorer = fit_scorer(
        train_rows, plan, _with_test_cutoff(config, plan.test), versions={}, labels_at=labels_from(data.con, data.tx)
    )
    val_pred = np.clip(scorer.value_model.predict(val_rows[feature_columns(train_rows)]), 0.0, None)
    scores = scorer.score(test_rows)
    pred = scores[PREDICTED_VALUE].to_numpy()
    realized_train = data.value(train_rows, FUTURE_VALUE)
    main = scorer.scheme
    names = list(main.names_)
    current = main.assign(data.value(test_rows))
    realized = main.assign(data.value(test_rows, FUTURE_VALUE))
    proposed = copy.deepcopy(main).fit_predictions(val_pred, realized=realized_train).assign_predicted(pred)
    when = plan.test.date()
    methods = {
        PROPOSED: proposed,
        "predicted (scheme shares)": scores[PREDICTED_TIER].to_numpy(),
        "persistence": current,
    }
    metrics = [{CUTOFF: when, "method": m, **tier_metrics(realized, t, names)} for m, t in methods.items()]
    diffs = _differences(realized, proposed, current, names, n_boot=10 * n_boot, seed=config.seed)

    # Every scheme, fitted on the validation cutoff; realized tiers from the state at T + h.
    after = data.features_at(plan.test + data.horizon).reindex(test_rows[CUSTOMER_ID]).reset_index()
    after[data.value_col] = test_rows[FUTURE_VALUE].to_numpy()  # spend over [T, T + h)
    rows, fitted = [], {}
    for spec in specs:
        scheme = spec.make(main).fit(data.value(val_rows), **spec.context(val_rows, plan.validation))
        now_ctx = spec.context(test_rows, plan.test) if spec.assign_context else {}
        next_ctx = spec.context(after, plan.test + data.horizon) if spec.assign_context else {}
        cur = scheme.assign_codes(data.value(test_rows), **now_ctx)
        real = _names(scheme.assign_codes(data.value(after), **next_ctx), scheme.names_)
        row = {CUTOFF: when, "scheme": spec.name, "k": int(scheme.k_)}
        row |= _prefixed("persistence", tier_metrics(real, _names(cur, scheme.names_), scheme.names_))
        if spec.predicts:
            scheme.fit_predictions(val_pred, realized=realized_train)
            ctx = {"history": next_ctx["history"]} if "history" in next_ctx else {}
            predicted = _names(scheme.assign_predicted_codes(pred, **ctx), scheme.names_)
            row |= _prefixed("predicted", tier_metrics(real, predicted, scheme.names_))
        rows.append(row)
        fitted[spec.name] = (scheme, cur)
    return _Backtest(plan, main, test_rows, pred, proposed, metrics, [{CUTOFF: when, **d} for d in diffs], rows, fitted)


def _stability(
    data: _Data, spec: _Spec, last: _Backtest, bases: dict[pd.Timestamp, TierScheme], seed: int, n_boot: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bootstrap refits on the latest validation cutoff, and refits at every cutoff of the study (``bases``: the
    configured scheme fitted there), all assigning the latest test cutoff's customers."""
    val_rows = data.at(last.plan.validation)
    boot = bootstrap_stability(
        spec.make(last.scheme),
        data.value(val_rows),
        n_boot=n_boot,
        random_state=seed,
        fit_context=spec.context(val_rows, last.plan.validation),
        assign_context=None if spec.assign_context else {},
    )
    refits, labels = [], []
    for c, rows in data.grid.groupby(CUTOFF):
        refits.append(spec.make(bases[c]).fit(data.value(rows), **spec.context(rows, c)))
        labels.append(str(c.date()))
    ref_ctx = spec.context(last.test, last.plan.test) if spec.assign_context else {}
    return boot, refit_stability(refits, data.value(last.test), labels, context=ref_ctx)


def _specs(config: Config, data: _Data) -> list[_Spec]:
    names = config.tiers.tier_names()
    return [
        _Spec("clustering (value)", lambda main: clone(main)),
        _Spec(
            "clustering (value, frequency, tenure)",
            lambda main: clone(main),
            context=lambda rows, when: {"behavior": rows[list(BEHAVIOR)].to_numpy(dtype=float, na_value=np.nan)},
            assign_context=False,
        ),
        _Spec("ABC 80/15/5", lambda main: ABCScheme()),
        _Spec("quantiles 1/5/10/25/50%", lambda main: QuantileScheme()),
        _Spec(
            "RFM quintiles",
            lambda main: ScoreBandScheme(names=names_for_k(names, min(len(names), 4))),
            context=lambda rows, when: {
                "recency": rows["recency_days"].to_numpy(dtype=float, na_value=np.nan),
                "frequency": rows["frequency_orders"].to_numpy(dtype=float, na_value=0.0),
            },
            predicts=False,
        ),
        _Spec(
            "loyalty (clustering thresholds, 1 period grace)",
            lambda main: LoyaltyScheme(names=main.names_, thresholds=main.boundaries_, grace_periods=1),
            context=lambda rows, when: {"history": data.history(rows, when)},
        ),
    ]


def _differences(
    realized: np.ndarray, predicted: np.ndarray, persistence: np.ndarray, order: list[str], *, n_boot: int, seed: int
) -> list[dict[str, Any]]:
    """Predicted minus persistence per tier metric, with a paired bootstrap interval over customers."""
    pos = {n: i for i, n in enumerate(order)}
    r, p, q = (pd.Series(a).map(pos).to_numpy(dtype=float) for a in (realized, predicted, persistence))
    metrics = tier_code_metrics(len(order))
    return [{"metric": name, **paired_bootstrap(fn, r, p, q, n_boot=n_boot, seed=seed)} for name, fn in metrics.items()]


def _names(codes: np.ndarray, order: Sequence[str]) -> np.ndarray:
    return np.asarray(order, dtype=object)[codes]


def _prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    short = {"accuracy": "acc", "macro_f1": "f1", "quadratic_kappa": "kappa"}
    return {f"{prefix}_{short[k]}": v for k, v in metrics.items()}


def _compare(
    specs: list[_Spec],
    per_cutoff: pd.DataFrame,
    last: _Backtest,
    v: np.ndarray,
    stab: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
) -> pd.DataFrame:
    rows = []
    for spec in specs:
        scheme, cur = last.fitted[spec.name]
        revenue = np.bincount(cur, weights=v, minlength=scheme.k_)
        m = per_cutoff[per_cutoff["scheme"] == spec.name].mean(numeric_only=True)
        boot, consecutive = stab[spec.name]
        rows.append(
            {
                "scheme": spec.name,
                "tiers": ", ".join(scheme.names_),
                "k": int(scheme.k_),
                "shares": np.round(np.bincount(cur, minlength=scheme.k_) / len(cur), 3).tolist(),
                "revenue_shares": np.round(revenue / max(revenue.sum(), 1e-12), 3).tolist(),
                **{c: float(m[c]) if c in m else float("nan") for c in _METRIC_COLUMNS},
                "bootstrap_ari": float(boot["ari"].mean()),
                "consecutive_ari": float(consecutive["ari"].mean()),
            }
        )
    return pd.DataFrame(rows)


_METRIC_COLUMNS = (
    "persistence_acc",
    "predicted_acc",
    "persistence_f1",
    "predicted_f1",
    "persistence_kappa",
    "predicted_kappa",
)
