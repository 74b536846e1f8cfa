import json

import numpy as np
import pandas as pd
import pytest

from tiercast.pipeline.config import load_config
from tiercast.pipeline.ingest.loader import from_ingest
from tiercast.pipeline.ingest.rules import IngestResult
from tiercast.pipeline.jobs.tier_study import PROPOSED, _specs, tier_study


def _transactions(n_customers: int = 300, days: int = 480, seed: int = 0) -> pd.DataFrame:
    """Customers arriving over the period, buying at heavy-tailed rates with lognormal order values."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2022-01-01")
    rows = []
    for c in range(n_customers):
        first = rng.integers(0, days - 60)
        rate = rng.lognormal(-3.0, 0.8)  # orders per day
        level = rng.lognormal(4.0, 0.8)
        t = float(first)
        while t < days:
            rows.append((f"c{c:04d}", start + pd.Timedelta(days=t), level * rng.lognormal(0, 0.3)))
            t += rng.exponential(1 / rate)
    tx = pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])
    tx["timestamp"] = tx["timestamp"].astype("datetime64[us]")
    tx["order_id"] = [f"o{i}" for i in range(len(tx))]
    return tx.sort_values(["timestamp", "customer_id"], ignore_index=True)


@pytest.fixture(scope="module")
def study():
    config = load_config(
        "configs/online_retail_ii.yaml",
        overrides={
            # one thread: on a shared machine, OpenMP threads waiting on busy cores make small fits many times slower
            "models": {
                "n_estimators": 60,
                "early_stopping_rounds": 10,
                "value_params": {"n_jobs": 1},
                "churn_params": {"n_jobs": 1},
            },
            "cutoffs": {"n_train": 4},
        },
    )
    tx = _transactions()
    ingest = from_ingest(
        config, IngestResult(accepted=tx, quarantine=pd.DataFrame(), n_read=len(tx), source="synthetic")
    )
    return tier_study(config, n_test=2, n_boot=3, data=ingest)


def test_study_reports_tiers_metrics_stability_and_schemes(study):
    assert len(study.test_cutoffs) == 2
    tiers = study.tiers
    assert tiers["customers"].sum() > 0 and tiers["share"].sum() == pytest.approx(1.0)
    assert tiers["min_boundary"].is_monotonic_decreasing
    metrics = study.tier_metrics
    assert set(metrics["method"]) == {PROPOSED, "predicted (scheme shares)", "persistence"}
    assert metrics[["accuracy", "macro_f1"]].stack().between(0, 1).all()
    assert set(study.tier_differences["metric"]) == {"accuracy", "macro_f1", "quadratic_kappa"}
    assert len(study.bootstrap) == 3 and study.bootstrap["ari"].between(-1, 1).all()
    assert len(study.consecutive) >= 1
    names = [t["tier"] for t in study.scheme.tiers]
    assert list(study.migration_counts.index) == names
    assert study.migration_counts.to_numpy().sum() == tiers["customers"].sum()
    schemes = study.schemes
    assert len(schemes) == 6 and schemes["persistence_kappa"].notna().all()
    assert schemes["shares"].map(sum).between(0.999, 1.001).all()
    assert study.segments["share"].sum() == pytest.approx(1.0)


def test_study_writes_as_json(study):
    doc = json.loads(study.to_json())
    assert doc["horizon_days"] == study.horizon_days and doc["test_cutoffs"] == [str(c) for c in study.test_cutoffs]
    assert [t["tier"] for t in doc["tiers"]] == list(study.tiers["tier"])
    assert len(doc["migration_counts"]) == len(study.migration_counts)


NAMES = ["platinum", "gold", "silver", "iron", "lead"]


def test_rfm_bands_keep_the_last_name_for_their_lowest_tier():
    """Five configured names: the RFM-score bands (at most 4 tiers) end with the lowest name, as the clustering's
    tiers do, not with the fourth."""
    config = load_config("configs/online_retail_ii.yaml", overrides={"tiers": {"names": NAMES}})
    (rfm,) = [spec for spec in _specs(config, data=None) if spec.name == "RFM quintiles"]
    assert rfm.make(None).names == ("platinum", "gold", "silver", "lead")
