"""Batch-scoring benchmark: features + scores + the at-risk list with reasons, for every customer of a Parquet file.

A model (the shipped BG/NBD-stacked value and churn models) is trained once on a customer sample at three stacked
cutoffs and saved as the tiercast pyfunc. Each measurement then runs in a fresh subprocess, like a batch job: load
the pyfunc, build features at the cutoff for all customers, score them in chunks through the pyfunc, rank the
at-risk list and explain its customers (reasons from per-feature contributions).
Peak memory is the subprocess's ``ru_maxrss``.

Reference measured in the same run: the bare LightGBM boosters predicting on the same feature matrix (the least any
scorer of these models must spend), so the scoring step is reported as a ratio to it.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from tiercast.benchmarks.bench_features import run_worker
from tiercast.features.contract import (
    CHURN_REASONS,
    CHURNED,
    CUSTOMER_ID,
    CUTOFF,
    FUTURE_ORDERS,
    FUTURE_VALUE,
    TRANSACTION_COLUMNS,
    spend_column,
)

WINDOWS_DAYS = (30, 90, 180, 365)
HORIZON_DAYS = 90
AT_RISK_TOP = 500
CHUNK_SIZE = 200_000


def train_model(path: str | Path, *, cutoff: str, model_dir: Path, sample_customers: int = 50_000) -> dict:
    """Fit a scorer on a customer sample at three earlier cutoffs and save it as a pyfunc in ``model_dir``."""
    import ibis
    import mlflow.pyfunc

    from tiercast.features.training_set import build_training_set
    from tiercast.models.gbm.churn import ChurnModel
    from tiercast.models.gbm.lgbm import DEFAULT_GRID
    from tiercast.models.gbm.value import ValueModel
    from tiercast.models.scorer import TiercastScorer, pyfunc_spec
    from tiercast.models.tiers.scheme import TierScheme

    con = ibis.duckdb.connect()
    tx = con.read_parquet(str(path)).select(*TRANSACTION_COLUMNS)
    ids = tx.select(CUSTOMER_ID).distinct().order_by(CUSTOMER_ID).limit(sample_customers)
    sample = tx.semi_join(ids, CUSTOMER_ID)
    end = pd.Timestamp(cutoff)
    cutoffs = [end - pd.Timedelta(days=HORIZON_DAYS * k) for k in (4, 3, 2)]
    train = build_training_set(
        sample,
        cutoffs=cutoffs,
        horizon_days=HORIZON_DAYS,
        windows_days=WINDOWS_DAYS,
        data_end=end,
        con=con,
    )
    features = [c for c in train.columns if c not in (CUSTOMER_ID, CUTOFF, FUTURE_VALUE, FUTURE_ORDERS, CHURNED)]
    # the shipped configuration: stacked on BG/NBD, settings chosen on the latest cutoff from the default grid
    fit, val = train[train[CUTOFF] != cutoffs[-1]], train[train[CUTOFF] == cutoffs[-1]]
    cols = [*features, CUTOFF]
    common = {"horizon_days": HORIZON_DAYS, "param_grid": DEFAULT_GRID, "n_estimators": 500}
    value = ValueModel(**common).fit(fit[cols], fit[FUTURE_VALUE], val[cols], val[FUTURE_VALUE])
    churn = ChurnModel(**common).fit(fit[cols], fit[CHURNED], val[cols], val[CHURNED])
    current = spend_column(HORIZON_DAYS)
    scheme = TierScheme(k=4).fit(val[current].clip(lower=0).to_numpy())
    scheme.fit_predictions(value.predict(val[features]))
    scorer = TiercastScorer(scheme, value, churn, tuple(features), current, HORIZON_DAYS)
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.pyfunc.save_model(model_dir, **pyfunc_spec(scorer, val.head(5), tmp))
    return {"training_rows": len(train), "value_trees": value.n_trees_, "churn_trees": churn.n_trees_}


def _load(model_dir: str):
    import mlflow.pyfunc

    from tiercast.pipeline.jobs.score import LoadedModel

    return LoadedModel(mlflow.pyfunc.load_model(model_dir), "benchmark", "0")


def run_tiercast(path: str, model_dir: str, cutoff: str) -> dict:
    """The batch job: features, chunked scores, at-risk list with reasons; seconds per phase."""
    import ibis

    from tiercast.features.build import build_features
    from tiercast.pipeline.config import OutputConfig
    from tiercast.pipeline.jobs.at_risk_list import at_risk
    from tiercast.pipeline.jobs.score import explain_features, score_features

    phases = {}
    t0 = time.perf_counter()
    model = _load(model_dir)
    phases["load_model"] = time.perf_counter() - t0
    t = time.perf_counter()
    con = ibis.duckdb.connect()
    tx = con.read_parquet(path).select(*TRANSACTION_COLUMNS)
    features = build_features(tx, cutoff=cutoff, windows_days=WINDOWS_DAYS, horizon_days=HORIZON_DAYS, con=con)
    phases["features"] = time.perf_counter() - t
    t = time.perf_counter()
    scores = score_features(model, features, cutoff=pd.Timestamp(cutoff), chunk_size=CHUNK_SIZE)
    phases["scores"] = time.perf_counter() - t
    t = time.perf_counter()
    ranked = at_risk(scores, tiers=OutputConfig().tiers_listed(model.scorer.scheme.names_), top=AT_RISK_TOP)
    listed = features.set_index(CUSTOMER_ID).loc[list(ranked[CUSTOMER_ID])].reset_index()
    reasons = explain_features(model, listed)
    phases["at_risk_with_reasons"] = time.perf_counter() - t
    phases["total"] = time.perf_counter() - t0
    return {
        "customers": len(scores),
        "listed": len(ranked),
        "explained": int((reasons != "").any(axis=1).sum()),
        **phases,
    }


def run_reference(path: str, model_dir: str, cutoff: str) -> dict:
    """Bare booster predictions on the same feature matrix: the floor for the scoring step."""
    import ibis

    from tiercast.features.build import build_features

    model = _load(model_dir)
    con = ibis.duckdb.connect()
    tx = con.read_parquet(path).select(*TRANSACTION_COLUMNS)
    features = build_features(tx, cutoff=cutoff, windows_days=WINDOWS_DAYS, horizon_days=HORIZON_DAYS, con=con)
    X = features[list(model.scorer.feature_names)]
    # the boosters' own input matrices (features plus the derived BTYD columns), built outside the timing
    value, churn = model.scorer.value_model, model.scorer.churn_model
    X_value, X_churn = value.transform(X), churn.transform(X)
    t = time.perf_counter()
    value.model_.booster_.predict(X_value)
    churn.model_.booster_.predict(X_churn)
    return {"customers": len(X), "scores": time.perf_counter() - t}


def run_reasons_everyone(path: str, model_dir: str, cutoff: str) -> dict:
    """``tiercast score --reasons``: scores plus the top-3 churn and value reasons of every customer (TreeSHAP on
    every row), chunked."""
    import ibis

    from tiercast.features.build import build_features
    from tiercast.pipeline.jobs.score import score_features

    t0 = time.perf_counter()
    model = _load(model_dir)
    con = ibis.duckdb.connect()
    tx = con.read_parquet(path).select(*TRANSACTION_COLUMNS)
    features = build_features(tx, cutoff=cutoff, windows_days=WINDOWS_DAYS, horizon_days=HORIZON_DAYS, con=con)
    t = time.perf_counter()
    scores = score_features(model, features, cutoff=pd.Timestamp(cutoff), chunk_size=CHUNK_SIZE, reasons=True)
    done = time.perf_counter()
    return {
        "customers": len(scores),
        "explained": int((scores[CHURN_REASONS] != "").sum()),
        "scores_with_reasons": done - t,
        "total": done - t0,
    }


IMPLEMENTATIONS = {"tiercast": run_tiercast, "reference": run_reference, "reasons_everyone": run_reasons_everyone}


def _worker(impl: str, path: str, model_dir: str, cutoff: str) -> dict:
    import tiercast.features.build  # noqa: F401 - imports outside the timed region
    import tiercast.pipeline.jobs.score  # noqa: F401

    result = IMPLEMENTATIONS[impl](path, model_dir, cutoff)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"impl": impl, **result, "peak_rss_mb": usage.ru_maxrss / 1024}


def measure(impl: str, path: str | Path, model_dir: Path, *, cutoff: str) -> dict:
    cmd = [sys.executable, "-m", "tiercast.benchmarks.bench_scoring", impl, str(path), str(model_dir), cutoff]
    return run_worker(cmd, f"{impl} scoring")


def run(path: str | Path, *, cutoff: str, repeats: int = 3) -> dict:
    """Train once, then alternate ``repeats`` measured runs of the batch job and the bare-booster reference."""
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        start = time.perf_counter()
        training = train_model(path, cutoff=cutoff, model_dir=model_dir)
        training["seconds"] = round(time.perf_counter() - start, 1)
        runs: dict[str, list[dict]] = {name: [] for name in IMPLEMENTATIONS}
        for i in range(repeats):
            for name in IMPLEMENTATIONS:
                if name == "reasons_everyone" and i > 0:  # minutes per run: measured once
                    continue
                runs[name].append(measure(name, path, model_dir, cutoff=cutoff))
    tc, ref = runs["tiercast"], runs["reference"]
    phases = ("load_model", "features", "scores", "at_risk_with_reasons", "total")
    summary = {f"median_{p}_seconds": statistics.median(r[p] for r in tc) for p in phases}
    ref_scores = statistics.median(r["scores"] for r in ref)
    return {
        CUTOFF: cutoff,
        "repeats": repeats,
        "training": training,
        "customers": tc[0]["customers"],
        "at_risk_listed": tc[0]["listed"],
        "tiercast": {**summary, "peak_rss_mb": max(r["peak_rss_mb"] for r in tc), "runs": tc},
        "reference_booster_predict": {"median_seconds": ref_scores, "runs": ref},
        "ratio_scores_to_booster_predict": summary["median_scores_seconds"] / ref_scores,
        "reasons_everyone": runs["reasons_everyone"][0],
        "targets": {"total_seconds": 60, "peak_rss_mb": 3072},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("impl", choices=sorted(IMPLEMENTATIONS))
    parser.add_argument("path")
    parser.add_argument("model_dir")
    parser.add_argument(CUTOFF)
    args = parser.parse_args(argv)
    print(json.dumps(_worker(args.impl, args.path, args.model_dir, args.cutoff)))


if __name__ == "__main__":
    main()
