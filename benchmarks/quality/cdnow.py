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
used only to score. :func:`run_cdnow_benchmark` returns a :class:`BenchmarkResult` (``to_json()``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tiercast.features.build import DEFAULT_WINDOWS_DAYS, build_features
from tiercast.features.labels import build_labels
from tiercast.models.baselines import NaiveBaseline
from tiercast.models.btyd.forecast import BTYDForecaster
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
from tiercast.pipeline.ingest.sources import DataConfig
from tiercast.pipeline.ingest.transactions import read_transactions
from tiercast.pipeline.jobs.predictions import predictions_frame

__all__ = [
    "REFERENCES",
    "REHEARSAL",
    "SPLITS",
    "STANDARD",
    "TARGETS",
    "Split",
    "benchmark_metrics",
    "cdnow_data_config",
    "cdnow_predictions",
    "log_cdnow_benchmark",
    "read_cdnow",
    "run_cdnow_benchmark",
    "validation_cutoffs",
]

DEFAULT_PATH = Path("data/cdnow/CDNOW_master.txt")
CALIBRATION_START = pd.Timestamp("1997-01-01")
CALIBRATION_END = pd.Timestamp("1997-10-01")  # exclusive: the calibration period ends 1997-09-30
HOLDOUT_END = pd.Timestamp("1998-07-01")  # exclusive: the holdout ends 1998-06-30
HORIZON_DAYS = (HOLDOUT_END - CALIBRATION_END).days  # 273 = 39 weeks
VALIDATION_CUTOFF = pd.Timestamp("1997-07-01")
FIRST_TRAIN_CUTOFF = pd.Timestamp("1997-04-01")
MIN_LABEL_DAYS = 30
METHODS = ("naive", "bgnbd_gg", "paretonbd_gg", "tiercast")


@dataclass(frozen=True)
class Split:
    """A calibration / holdout split of the CDNOW cohort and tiercast's cutoffs inside the calibration period.

    ``calibration_end`` and ``holdout_end`` are exclusive. Training cutoffs fall on the 1st and 15th of each month
    from ``first_train_cutoff`` to the last one with a ``min_label_days`` window before ``calibration_end``;
    settings are chosen on ``validation_cutoff``.
    """

    name: str
    calibration_end: pd.Timestamp
    holdout_end: pd.Timestamp
    validation_cutoff: pd.Timestamp
    first_train_cutoff: pd.Timestamp = FIRST_TRAIN_CUTOFF
    min_label_days: int = MIN_LABEL_DAYS

    def __post_init__(self) -> None:
        if not CALIBRATION_START < self.first_train_cutoff < self.calibration_end < self.holdout_end:
            raise ValueError(f"split {self.name!r}: dates must run calibration start < first training cutoff < "
                             "calibration end < holdout end")  # fmt: skip
        if self.validation_cutoff not in self.training_cutoffs() or self.validation_cutoff == self.first_train_cutoff:
            raise ValueError(f"split {self.name!r}: the validation cutoff must be a training cutoff after the first")

    @property
    def horizon_days(self) -> int:
        return (self.holdout_end - self.calibration_end).days

    def training_cutoffs(self) -> list[pd.Timestamp]:
        last = self.calibration_end - pd.Timedelta(days=self.min_label_days)
        return list(pd.date_range(self.first_train_cutoff, last, freq="SMS"))


#: The published split: 39-week calibration to 1997-09-30, 39-week holdout to 1998-06-30.
STANDARD = Split("standard", CALIBRATION_END, HOLDOUT_END, VALIDATION_CUTOFF)
#: The protocol inside the standard calibration period (calibration to 1997-06-30, holdout 1997-07-01 ..
#: 1997-09-30, settings on 1997-05-15), where design alternatives are judged without reading the standard holdout.
#: It is compressed, not shifted: a 92-day horizon (273 on the standard split), training labels of 30 to 91 days
#: (30 to 183) and a 47-day validation window (92). Ranking and feature changes are judged well here; the
#: carrying of short label windows to a much longer horizon (the BTYD offset, the churn calibration's form) is
#: barely exercised, since the longest training label is about as long as the horizon.
REHEARSAL = Split("rehearsal", pd.Timestamp("1997-07-01"), CALIBRATION_END, pd.Timestamp("1997-05-15"))
SPLITS = {s.name: s for s in (STANDARD, REHEARSAL)}

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


def cdnow_data_config(path: str | Path = DEFAULT_PATH) -> DataConfig:
    """The ``data:`` section of ``configs/cdnow.yaml`` for a CDNOW_master.txt at ``path``."""
    return DataConfig.model_validate(
        {
            "transactions": {
                "path": str(path),
                "format": "csv",
                "delimiter": "whitespace",
                "columns": {
                    "customer_id": "customer_id",
                    "timestamp": "date",
                    "amount": "dollar_value",
                    "quantity": "number_of_cds",
                },
                "timestamp_format": "%Y%m%d",
                "duplicates": "keep",
                "zero_amounts": "keep",
            },
            "max_quarantine_share": 0.01,
        }
    )


def read_cdnow(path: str | Path = DEFAULT_PATH) -> pd.DataFrame:
    """The CDNOW transactions as the canonical frame (69,659 lines, 23,570 customers)."""
    return read_transactions(cdnow_data_config(path)).accepted


def labelled_rows(
    tx: pd.DataFrame,
    cutoff: pd.Timestamp,
    label_end: pd.Timestamp,
    windows: tuple[int, ...],
    horizon_days: int = HORIZON_DAYS,
) -> pd.DataFrame:
    """Features at ``cutoff`` (transactions before it) with labels of ``[cutoff, label_end)``; ``label_days``."""
    days = (label_end - cutoff).days
    feats = build_features(tx, cutoff=cutoff, windows_days=windows, horizon_days=horizon_days)
    labels = build_labels(tx[tx["timestamp"] < label_end], cutoff=cutoff, horizon_days=days)
    out = feats.merge(labels, on="customer_id", how="left")
    out = out.fillna({"future_value": 0.0, "future_orders": 0.0, "churned": 1.0})
    out.insert(1, "cutoff", pd.Series(cutoff, index=out.index, dtype="datetime64[us]"))
    out["label_days"] = float(days)
    return out


def validation_cutoffs(split: Split, n: int) -> list[pd.Timestamp]:
    """The split's validation cutoff and up to ``n - 1`` training cutoffs before it, each leaving an earlier
    training cutoff with a label window of at least ``min_label_days`` ending by it."""
    cuts = [c for c in split.training_cutoffs() if c <= split.validation_cutoff]
    first = split.first_train_cutoff + pd.Timedelta(days=split.min_label_days)
    return [c for c in cuts if c >= first][-n:]


def training_cutoffs() -> list[pd.Timestamp]:
    """1st and 15th of each month from 1997-04-01 to the last cutoff with a 30-day window before 1997-10-01."""
    return STANDARD.training_cutoffs()


def _clean(d: dict[str, float]) -> dict[str, float | None]:
    return {
        k: (None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)) for k, v in d.items()
    }


def run_cdnow_benchmark(
    data_path: str | Path = DEFAULT_PATH,
    *,
    seed: int = 42,
    transactions: pd.DataFrame | None = None,
    sample_every: int = 1,
    n_boot: int = 500,
    btyd: str = "bgnbd",
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
    and are empty for any other.
    """
    sp = SPLITS[split] if isinstance(split, str) else split
    horizon = sp.horizon_days
    tx = read_cdnow(data_path) if transactions is None else transactions
    if sample_every > 1:
        ids = np.sort(tx["customer_id"].unique())[::sample_every]
        tx = tx[tx["customer_id"].isin(ids)].reset_index(drop=True)
    calibration = tx[tx["timestamp"] < sp.calibration_end]  # every training row is built from these alone
    windows = tuple(windows_days)

    # --- tiercast: settings on the validation cutoffs (rolling origin), then a refit on the longest windows
    cutoffs = sp.training_cutoffs()
    refit = pd.concat(
        [labelled_rows(calibration, c, sp.calibration_end, windows, horizon) for c in cutoffs], ignore_index=True
    )
    val_cuts = validation_cutoffs(sp, n_validation)
    # one fold per validation cutoff v: probe rows of the earlier cutoffs labelled up to v, validation rows at v
    # labelled up to the calibration end
    probes = []
    for i, v in enumerate(val_cuts):
        part = [
            labelled_rows(calibration, c, v, windows, horizon)
            for c in cutoffs
            if c <= v - pd.Timedelta(days=sp.min_label_days)
        ]
        probes.append(pd.concat(part, ignore_index=True).assign(_fold=i))
    probe = pd.concat(probes, ignore_index=True)
    val = refit[refit["cutoff"].isin(val_cuts)].reset_index(drop=True)
    folds = [(probe["_fold"].to_numpy() == i, (val["cutoff"] == v).to_numpy()) for i, v in enumerate(val_cuts)]
    for i, v in enumerate(val_cuts):
        ends = probe["cutoff"] + pd.to_timedelta(probe["label_days"], unit="D")
        assert ends[probe["_fold"] == i].max() <= v
    assert (refit["cutoff"] + pd.to_timedelta(refit["label_days"], unit="D")).max() <= sp.calibration_end
    test = labelled_rows(tx[tx["timestamp"] < sp.holdout_end], sp.calibration_end, sp.holdout_end, windows, horizon)
    features = [
        c for c in test.columns if c not in ("customer_id", "future_value", "future_orders", "churned", "label_days")
    ]

    common = {"horizon_days": horizon, "btyd": btyd, "param_grid": param_grid, "random_state": seed}
    models: dict[str, Any] = {}
    for name, cls, target in (("value", ValueModel, "future_value"), ("churn", ChurnModel, "churned")):
        model = cls(**common).fit(
            probe[features],
            probe[target],
            val[features],
            val[target],
            label_days=probe["label_days"].to_numpy(),
            val_label_days=val["label_days"].to_numpy(),
            folds=folds if len(folds) > 1 else None,
        )
        model.refit(refit[features], refit[target], label_days=refit["label_days"].to_numpy())
        # the BTYD part fitted at the scoring cutoff on the calibration period (label-free, like the baselines)
        models[name] = model.fit_btyd_at(test[features])
    X_test = test[features].drop(columns="cutoff")
    preds: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "tiercast": (models["value"].predict(X_test), models["churn"].predict_proba(X_test)[:, 1])
    }

    # --- baselines
    longest = refit[refit["cutoff"] == sp.first_train_cutoff]
    naive = NaiveBaseline().fit(longest, y_churn=longest["churned"])
    preds["naive"] = (naive.predict_value(test, horizon), naive.predict_churn(test, horizon))
    inputs = btyd_inputs(test)
    for name, model_name in (("bgnbd_gg", "bgnbd"), ("paretonbd_gg", "paretonbd")):
        b = BTYDForecaster(model=model_name).fit(inputs)
        preds[name] = (b.predict_value(inputs, horizon), b.predict_churn(inputs, horizon))

    y = test["future_value"].to_numpy(dtype=float)
    churned = test["churned"].to_numpy(dtype=int)
    methods = {
        name: {
            "value": _clean(value_metrics(y, preds[name][0])),
            "churn": _clean(churn_metrics(churned, preds[name][1])),
        }
        for name in METHODS
    }

    # --- tiercast minus the best baseline, paired bootstrap over customers
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

    v, c = models["value"], models["churn"]
    return BenchmarkResult(
        split={
            "name": sp.name,
            "calibration": [str(CALIBRATION_START.date()), str((sp.calibration_end - pd.Timedelta(days=1)).date())],
            "holdout": [str(sp.calibration_end.date()), str((sp.holdout_end - pd.Timedelta(days=1)).date())],
            "horizon_days": horizon,
            "n_customers": len(test),
            "training_cutoffs": [str(t.date()) for t in cutoffs],
            "validation_cutoff": str(sp.validation_cutoff.date()),
            "validation_cutoffs": [str(t.date()) for t in val_cuts],
            "n_probe_rows": len(probe),
            "n_refit_rows": len(refit),
            "seed": seed,
            "sample_every": sample_every,
        },
        methods=methods,
        comparison=comparison,
        tiercast_model={
            "btyd": btyd,
            "value": {"n_trees": v.n_trees_, "weight": v.weight_, "num_leaves": v.params_.get("num_leaves")},
            "churn": {
                "n_trees": c.n_trees_,
                "weight": c.weight_,
                "num_leaves": c.params_.get("num_leaves"),
                "calibration": c.calibration_used_,
            },
        },
        references=REFERENCES if sp == STANDARD else {},
        targets=TARGETS if sp == STANDARD else {},
        predictions=_wide_predictions(test, preds) if return_predictions else None,
    )


def _wide_predictions(test: pd.DataFrame, preds: dict[str, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    frame = test[["customer_id", "future_value", "churned"]].copy()
    for name in METHODS:
        frame[f"{name}_value"], frame[f"{name}_churn"] = preds[name]
    return frame


def cdnow_predictions(result: BenchmarkResult) -> pd.DataFrame:
    """The per-customer predictions of a result run with ``return_predictions`` as the long table of
    :mod:`tiercast.pipeline.jobs.predictions` (one row per customer x method, cutoff = the holdout start)."""
    wide = result.predictions
    preds = {m: (wide[f"{m}_value"].to_numpy(), wide[f"{m}_churn"].to_numpy()) for m in METHODS}
    return predictions_frame(wide, preds, cutoff=pd.Timestamp(result.split["holdout"][0]))


def benchmark_metrics(result: BenchmarkResult) -> dict[str, float]:
    """MLflow metrics of a benchmark result: ``test.<method>.<metric>`` and ``comparison.<metric>.{diff,lo,hi}``."""
    out: dict[str, float] = {}
    for name, m in result.methods.items():
        for side in ("value", "churn"):
            out.update({f"test.{name}.{k}": v for k, v in m[side].items() if v is not None})
    for metric, c in result.comparison.items():
        out.update({f"comparison.{metric}.{k}": c[k] for k in ("diff", "lo", "hi") if c[k] is not None})
    return out


def log_cdnow_benchmark(
    config: Any, data_path: str | Path, result: BenchmarkResult, transactions: pd.DataFrame | None = None
) -> str:
    """Record a benchmark result as one MLflow run in ``config``'s store (split and model settings as params,
    metrics per method, the JSON and a gain curve); returns the run id."""
    import mlflow

    from tiercast.pipeline.tracking import plots
    from tiercast.pipeline.tracking.runs import data_fingerprint, flatten, log_run_context, setup_mlflow

    experiment_id = setup_mlflow(config)
    tx = read_cdnow(data_path) if transactions is None else transactions
    fingerprint = data_fingerprint(data_path, n_read=len(tx), accepted=tx, n_quarantined=0)
    split_name = result.split["name"]
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"benchmark-cdnow-{split_name}") as run:
        log_run_context(config, job="benchmark-cdnow", fingerprint=fingerprint)
        mlflow.set_tag("tiercast.benchmark_split", split_name)
        split = {k: v for k, v in result.split.items() if k not in ("training_cutoffs", "validation_cutoffs")}
        mlflow.log_param("benchmark.split.validation_cutoffs", ",".join(result.split["validation_cutoffs"]))
        mlflow.log_params(flatten("benchmark", {"split": split, "tiercast_model": result.tiercast_model}))
        mlflow.log_param("cutoffs.test_resolved", result.split["holdout"][0])
        mlflow.log_metrics(benchmark_metrics(result))
        mlflow.log_dict(result.to_dict(), "benchmark_cdnow.json")
        preds = result.predictions
        if preds is not None:
            fig = plots.gain_curve(
                preds["future_value"].to_numpy(), {m: preds[f"{m}_value"].to_numpy() for m in METHODS}
            )
            mlflow.log_figure(fig, "plots/gain_curve.png")
            plots.close(fig)
            fig = plots.calibration_curve(
                preds["churned"].to_numpy(), {m: preds[f"{m}_churn"].to_numpy() for m in METHODS}
            )
            mlflow.log_figure(fig, "plots/calibration_curve.png")
            plots.close(fig)
    return run.info.run_id
