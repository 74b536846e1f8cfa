"""The standard CDNOW benchmark: 39-week calibration / 39-week holdout, all 23,570 customers.

Split (Fader, Hardie & Lee 2005): calibration 1997-01-01 .. 1997-09-30, holdout 1997-10-01 .. 1998-06-30 (273
days). Every method scores all customers at the cutoff 1997-10-01; the value target is holdout spend, the churn
target "no purchase in the holdout". Methods:

* ``naive``: calibration spend of the last 273 days (all of it) as the value; recency as the churn score,
  calibrated by a logistic fit on the longest label window inside the calibration period (1997-04-01 ..
  1997-09-30, 183 days), so its Brier carries a horizon mismatch; its AUC is recency's exactly;
* ``bgnbd_gg`` / ``paretonbd_gg``: BG/NBD or Pareto/NBD x Gamma-Gamma fitted on the calibration period, the
  published baselines (P(no purchase in 273 days | history) for churn, not 1 - P(alive));
* ``tiercast``: the value and churn models, trained **only on data before 1997-10-01**.

No 39-week label exists before the holdout (every customer first bought in 1997-Q1), so tiercast trains on
shorter label windows and lets the stacked BTYD model carry the horizon (the trees are boosted from the BTYD
prediction for each row's own window; at scoring the BTYD prediction is for 273 days). The cutoffs:

* training cutoffs on the 1st and 15th of each month from 1997-04-01 (the first date the whole cohort has
  joined: acquisition ended 1997-03-31, so earlier cutoffs would train on a partial, younger population) to
  1997-09-01 (the last with a 30-day label window before the calibration end);
* the validation cutoff 1997-07-01, label window [1997-07-01, 1997-10-01) (92 days);
* settings (hyperparameters, tree count, blend weight, probability calibration) are chosen on the validation cutoff
  with trees fitted on the earlier cutoffs' label windows *ending at the validation cutoff* — time-separated:
  label windows overlapping the validation window let near-identical rows of a customer leak the validation
  labels into training (validation nGini 0.74 against 0.60 on the holdout in our trials);
* the final trees are then refitted with those settings on every training cutoff, each labelled with its
  longest window, ending at the calibration end (1997-10-01).

The churn probabilities are calibrated horizon-consistently: the validation cutoff's logistic map rescales only
the trees' correction, and the BTYD log-odds of the 273-day horizon enter unchanged (a Platt map of the whole
log-odds, fitted on 92-day labels, would rescale a 273-day BTYD prediction with a 92-day slope); see
:class:`tiercast.models.gbm.churn.ChurnModel`. Design alternatives are judged on a rehearsal inside
the calibration period (:data:`REHEARSAL`, ``tiercast benchmark cdnow --split rehearsal``: settings on 1997-05-15,
scored at 1997-07-01 for 92 days, nothing after 1997-09-30), not on the holdout. How far the holdout can be
predicted at all is measured by an oracle fitted on its own outcomes, :mod:`tiercast.benchmarks.quality.ceiling`.

Every label window ends by 1997-09-30 and the training features see only earlier transactions; the holdout is
used only to score. :func:`run_cdnow_benchmark` returns a :class:`BenchmarkResult` (``to_json()``)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd

from tiercast.benchmarks.quality.cdnow_data import (
    CALIBRATION_START,
    DEFAULT_PATH,
    SPLITS,
    STANDARD,
    Split,
    labelled_rows,
    read_cdnow,
    validation_cutoffs,
)
from tiercast.features.build import DEFAULT_WINDOWS_DAYS, as_table, feature_query
from tiercast.features.contract import CHURNED, CUSTOMER_ID, CUTOFF, FUTURE_VALUE, LABEL_COLUMNS, LABEL_DAYS, TIMESTAMP
from tiercast.features.cutoff_queries import run_at_cutoffs
from tiercast.models.baselines import NaiveBaseline
from tiercast.models.btyd.forecast import fit_forecaster
from tiercast.models.btyd.stacker import btyd_inputs
from tiercast.models.evaluation import (
    brier,
    churn_metrics,
    normalized_gini,
    paired_bootstrap,
    roc_auc,
    spearman,
    value_metrics,
)
from tiercast.models.gbm.churn import ChurnModel
from tiercast.models.gbm.lgbm import DEFAULT_GRID
from tiercast.models.gbm.value import ValueModel
from tiercast.pipeline.config import ModelConfig

METHODS = ("naive", "bgnbd_gg", "paretonbd_gg", "tiercast")


#: Published / measured reference points on this split.
REFERENCES: dict[str, float] = {
    "paretonbd_gg.normalized_gini": 0.684,
    "paretonbd_gg.spearman": 0.44,
    "paretonbd_gg.mae": 32.0,
    "bgnbd_gg.normalized_gini": 0.672,
    "recency.roc_auc": 0.759,
    "paretonbd.roc_auc": 0.763,
    "plain_lightgbm.normalized_gini": 0.71,
    "plain_lightgbm.roc_auc": 0.77,
    "actual_total": 776961.0,
}


#: Targets for tiercast on the standard split (at or below the ceiling estimate of
#: :mod:`tiercast.benchmarks.quality.ceiling`).
TARGETS: dict[str, float] = {
    "normalized_gini_min": 0.72,
    "roc_auc_min": 0.772,
    "brier_max": 0.165,
}


@dataclass(frozen=True)
class BenchmarkResult:
    """One run of the CDNOW benchmark: the split, each method's value and churn metrics, tiercast's paired
    comparison with the best baseline per metric, the settings tiercast chose, the published references and the
    targets (standard split only), and optionally the per-customer predictions (wide: ``<method>_value``,
    ``<method>_churn``)."""

    split: dict[str, Any]
    methods: dict[str, dict[str, dict[str, float | None]]]
    comparison: dict[str, dict[str, Any]]
    tiercast_model: dict[str, Any]
    references: dict[str, Any]
    targets: dict[str, float]
    predictions: pd.DataFrame | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready result, without the per-customer predictions."""
        keys = ("split", "methods", "comparison", "tiercast_model", "references", "targets")
        return {k: getattr(self, k) for k in keys}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)


def _clean(d: dict[str, float]) -> dict[str, float | None]:
    return {
        k: (None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)) for k, v in d.items()
    }


#: The default config's model settings, which the benchmark measures.
_MODEL_DEFAULTS = ModelConfig()


def run_cdnow_benchmark(
    data_path: str | Path = DEFAULT_PATH,
    *,
    seed: int = 42,
    transactions: pd.DataFrame | None = None,
    sample_every: int = 1,
    n_boot: int = 500,
    btyd: str = _MODEL_DEFAULTS.btyd,
    seasonal: bool | str = _MODEL_DEFAULTS.seasonal,
    btyd_level: bool = _MODEL_DEFAULTS.btyd_level,
    param_grid: tuple[dict[str, Any], ...] | None = DEFAULT_GRID,
    windows_days: tuple[int, ...] = DEFAULT_WINDOWS_DAYS,
    return_predictions: bool = False,
    split: Split | str = STANDARD,
    n_validation: int = 3,
) -> BenchmarkResult:
    """Run the CDNOW benchmark (a :class:`BenchmarkResult`).

    ``methods[NAME]`` holds ``value`` (normalized_gini, spearman, mae, rmse, top10_capture, top20_capture,
    predicted_total, actual_total) and ``churn`` (roc_auc, pr_auc, brier) for NAME in naive, bgnbd_gg,
    paretonbd_gg, tiercast. ``comparison`` holds paired-bootstrap intervals over customers (``n_boot``
    replicates) of tiercast minus the best baseline per metric. ``transactions`` (a canonical frame) replaces
    reading ``data_path``; ``sample_every`` > 1 keeps every k-th customer (by id) for a quicker, noisier run.
    ``return_predictions`` adds ``predictions``: a frame of customer_id, the targets and every method's value and
    churn predictions (not JSON; for plots and checks). ``split``: :data:`STANDARD` (the published split) or
    :data:`REHEARSAL` (by name or as a :class:`Split`); ``references`` and ``targets`` belong to the standard split
    and are empty for any other. ``btyd``, ``seasonal`` and ``btyd_level`` default to the default config's model
    settings, so the benchmark measures what a user trains.
    """
    sp = SPLITS[split] if isinstance(split, str) else split
    horizon = sp.horizon_days
    tx = read_cdnow(data_path) if transactions is None else transactions
    if sample_every > 1:
        ids = np.sort(tx[CUSTOMER_ID].unique())[::sample_every]
        tx = tx[tx[CUSTOMER_ID].isin(ids)].reset_index(drop=True)
    rows = _benchmark_rows(tx, sp, tuple(windows_days), n_validation)
    common = {"horizon_days": horizon, "btyd": btyd, "param_grid": param_grid, "random_state": seed}
    common |= {"seasonal": seasonal, "btyd_level": btyd_level}
    models = _fit_tiercast(rows, common)
    X_test = rows.test[rows.features].drop(columns=CUTOFF)
    preds = {"tiercast": (models["value"].predict(X_test), models["churn"].predict_proba(X_test)[:, 1])}
    preds |= _baseline_predictions(rows, sp)
    y = rows.test[FUTURE_VALUE].to_numpy(dtype=float)
    churned = rows.test[CHURNED].to_numpy(dtype=int)
    methods = {name: _method_metrics(y, churned, *preds[name]) for name in METHODS}
    return BenchmarkResult(
        split=_split_record(sp, rows, seed=seed, sample_every=sample_every),
        methods=methods,
        comparison=_comparison(methods, preds, y, churned, n_boot=n_boot, seed=seed),
        tiercast_model=_model_record(models),
        references=REFERENCES if sp == STANDARD else {},
        targets=TARGETS if sp == STANDARD else {},
        predictions=_wide_predictions(rows.test, preds) if return_predictions else None,
    )


def _method_metrics(y: np.ndarray, churned: np.ndarray, value: np.ndarray, churn: np.ndarray) -> dict[str, Any]:
    """One method's value and churn metrics on the holdout."""
    return {"value": _clean(value_metrics(y, value)), "churn": _clean(churn_metrics(churned, churn))}


@dataclass(frozen=True)
class _Rows:
    """The labelled rows of one benchmark run, all built from the calibration period but the test rows."""

    cutoffs: list[pd.Timestamp]
    val_cuts: list[pd.Timestamp]
    refit: pd.DataFrame
    probe: pd.DataFrame
    val: pd.DataFrame
    folds: list[tuple[np.ndarray, np.ndarray]]
    test: pd.DataFrame

    @property
    def features(self) -> list[str]:
        return [c for c in self.test.columns if c not in (CUSTOMER_ID, *LABEL_COLUMNS, LABEL_DAYS)]


def _benchmark_rows(tx: pd.DataFrame, sp: Split, windows: tuple[int, ...], n_validation: int) -> _Rows:
    """Settings on the validation cutoffs (rolling origin), then a refit on the longest windows: one fold per
    validation cutoff v, probe rows of the earlier cutoffs labelled up to v, validation rows at v labelled up to
    the calibration end. Every training row is built from the calibration period alone."""
    horizon = sp.horizon_days
    calibration = tx[tx[TIMESTAMP] < sp.calibration_end]
    cutoffs = sp.training_cutoffs()
    # a cutoff's features read only the transactions before it: built once, labelled up to each fold's end; one
    # query for every cutoff (its SQL compiled for two of them), as build_features would build each
    table = as_table(calibration)
    query = lambda c: feature_query(table, cutoff=c, windows_days=windows, horizon_days=horizon)  # noqa: E731
    built = run_at_cutoffs(ibis.duckdb.connect(), query, cutoffs)
    feats = {c: rows.to_pandas() for c, rows in zip(cutoffs, built, strict=True)}
    refit = pd.concat(
        [labelled_rows(calibration, c, sp.calibration_end, windows, horizon, features=feats[c]) for c in cutoffs],
        ignore_index=True,
    )
    val_cuts = validation_cutoffs(sp, n_validation)
    probes = []
    for i, v in enumerate(val_cuts):
        part = [
            labelled_rows(calibration, c, v, windows, horizon, features=feats[c])
            for c in cutoffs
            if c <= v - pd.Timedelta(days=sp.min_label_days)
        ]
        probes.append(pd.concat(part, ignore_index=True).assign(_fold=i))
    probe = pd.concat(probes, ignore_index=True)
    val = refit[refit[CUTOFF].isin(val_cuts)].reset_index(drop=True)
    folds = [(probe["_fold"].to_numpy() == i, (val[CUTOFF] == v).to_numpy()) for i, v in enumerate(val_cuts)]
    for i, v in enumerate(val_cuts):
        ends = probe[CUTOFF] + pd.to_timedelta(probe[LABEL_DAYS], unit="D")
        assert ends[probe["_fold"] == i].max() <= v
    assert (refit[CUTOFF] + pd.to_timedelta(refit[LABEL_DAYS], unit="D")).max() <= sp.calibration_end
    test = labelled_rows(tx[tx[TIMESTAMP] < sp.holdout_end], sp.calibration_end, sp.holdout_end, windows, horizon)
    return _Rows(cutoffs, val_cuts, refit, probe, val, folds, test)


def _fit_tiercast(rows: _Rows, common: dict[str, Any]) -> dict[str, Any]:
    """The value and churn models: settings on the folds, trees refitted on the longest windows, and the BTYD part
    fitted at the scoring cutoff on the calibration period (label-free, like the baselines)."""
    probe, val, refit, features = rows.probe, rows.val, rows.refit, rows.features
    models: dict[str, Any] = {}
    for name, cls, target in (("value", ValueModel, FUTURE_VALUE), ("churn", ChurnModel, CHURNED)):
        model = cls(**common).fit(
            probe[features],
            probe[target],
            val[features],
            val[target],
            label_days=probe[LABEL_DAYS].to_numpy(),
            val_label_days=val[LABEL_DAYS].to_numpy(),
            folds=rows.folds if len(rows.folds) > 1 else None,
        )
        model.refit(refit[features], refit[target], label_days=refit[LABEL_DAYS].to_numpy())
        models[name] = model.fit_btyd_at(rows.test[features])
    return models


def _baseline_predictions(rows: _Rows, sp: Split) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The naive baseline (learned on the longest training windows) and the BTYD models fitted at the test
    cutoff."""
    horizon, test = sp.horizon_days, rows.test
    longest = rows.refit[rows.refit[CUTOFF] == sp.first_train_cutoff]
    naive = NaiveBaseline().fit(longest, y_churn=longest[CHURNED])
    preds = {"naive": (naive.predict_value(test, horizon), naive.predict_churn(test, horizon))}
    inputs = btyd_inputs(test)
    for name, model_name in (("bgnbd_gg", "bgnbd"), ("paretonbd_gg", "paretonbd")):
        b = fit_forecaster(inputs, model=model_name)
        preds[name] = (b.predict_value(inputs, horizon), b.predict_churn(inputs, horizon))
    return preds


def _comparison(
    methods: dict[str, Any], preds: dict[str, Any], y: np.ndarray, churned: np.ndarray, *, n_boot: int, seed: int
) -> dict[str, dict[str, Any]]:
    """tiercast minus the best baseline per metric, with a paired bootstrap over customers."""
    comparison = {}
    for metric, fn, side, target, better in (
        ("normalized_gini", normalized_gini, "value", y, max),
        ("spearman", spearman, "value", y, max),
        ("roc_auc", roc_auc, "churn", churned, max),
        ("brier", brier, "churn", churned, min),
    ):
        idx = 0 if side == "value" else 1
        base = {n: methods[n][side][metric] for n in METHODS if n != "tiercast"}
        best = better(base, key=lambda n: base[n])
        if n_boot > 0:
            res = paired_bootstrap(fn, target, preds["tiercast"][idx], preds[best][idx], n_boot=n_boot, seed=seed)
        else:
            res = {"diff": methods["tiercast"][side][metric] - base[best], "lo": None, "hi": None}
        comparison[metric] = {"vs": best, **_clean({k: res[k] for k in ("diff", "lo", "hi")})}
    return comparison


def _split_record(sp: Split, rows: _Rows, *, seed: int, sample_every: int) -> dict[str, Any]:
    return {
        "name": sp.name,
        "calibration": [str(CALIBRATION_START.date()), str((sp.calibration_end - pd.Timedelta(days=1)).date())],
        "holdout": [str(sp.calibration_end.date()), str((sp.holdout_end - pd.Timedelta(days=1)).date())],
        "horizon_days": sp.horizon_days,
        "n_customers": len(rows.test),
        "training_cutoffs": [str(t.date()) for t in rows.cutoffs],
        "validation_cutoff": str(sp.validation_cutoff.date()),
        "validation_cutoffs": [str(t.date()) for t in rows.val_cuts],
        "n_probe_rows": len(rows.probe),
        "n_refit_rows": len(rows.refit),
        "seed": seed,
        "sample_every": sample_every,
    }


def _model_record(models: dict[str, Any]) -> dict[str, Any]:
    v, c = models["value"], models["churn"]
    return {
        "btyd": v.btyd_,
        "seasonal": v.seasonal,
        "btyd_level": v.btyd_level,
        "value": {
            "n_trees": v.n_trees_,
            "weight": v.weight_,
            "num_leaves": v.params_.get("num_leaves"),
            "spend": getattr(v, "spend_", None),
        },
        "churn": {
            "n_trees": c.n_trees_,
            "weight": c.weight_,
            "num_leaves": c.params_.get("num_leaves"),
            "calibration": c.calibration_used_,
        },
    }


def _wide_predictions(test: pd.DataFrame, preds: dict[str, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    frame = test[[CUSTOMER_ID, FUTURE_VALUE, CHURNED]].copy()
    for name in METHODS:
        frame[f"{name}_value"], frame[f"{name}_churn"] = preds[name]
    return frame
