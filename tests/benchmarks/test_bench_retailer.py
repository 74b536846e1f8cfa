"""The synthetic-retailer quality benchmark: the backtest's predictions beside the truth, and its checks."""

import datetime as dt

import pytest

from tiercast.benchmarks.bench_retailer import TRUE, row_checks, run_world, world_checks
from tiercast.benchmarks.readme import render
from tiercast.benchmarks.retailer import WORLDS, BacktestSetup, Cohort

FAST = {
    "features": {"windows_days": [30, 90]},
    "cutoffs": {"n_train": 3, "n_validation": 1},
    "models": {
        "n_estimators": 100,
        "early_stopping_rounds": 10,
        "param_grid": "none",
        "value_params": {"n_jobs": 1},
        "churn_params": {"n_jobs": 1},
    },
}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    world = WORLDS["seasonal"].with_(
        name="tiny_seasonal",
        cohorts=tuple(Cohort(start=dt.date(y, 1, 1), days=365, customers=150) for y in (2020, 2021)),
        end=dt.date(2022, 1, 1),
        backtest=BacktestSetup(test_cutoff=dt.date(2021, 10, 1), horizon_days=91, step_days=61, n_tests=2),
    )
    return run_world(world, tmp_path_factory.mktemp("worlds"), n_boot=30, config_overrides=FAST)


@pytest.mark.heavy
def test_every_method_and_the_truth_are_scored_on_the_same_customers(result):
    rows = result["rows"]
    cutoffs = sorted({r["cutoff"] for r in rows})
    assert cutoffs == ["2021-08-01", "2021-10-01"]
    for c in cutoffs:
        at = {r["method"]: r for r in rows if r["cutoff"] == c}
        assert {"bgnbd_gg", "paretonbd_gg", "tiercast", TRUE} <= set(at)
        assert len({r["actual_total"] for r in at.values()}) == 1
        assert len({r["realized_churn"] for r in at.values()}) == 1
        assert at[TRUE]["predicted_total"] > 0 and 0 <= at[TRUE]["brier"] <= 1
    assert result["n_customers"] == 300


@pytest.mark.heavy
def test_comparisons_and_checks_are_reported_per_cutoff(result):
    for c in result["comparisons"]:
        for side in ("vs_best_btyd", "vs_true"):
            for metric in ("normalized_gini", "roc_auc"):
                r = c[side][metric]
                assert r["lo"] <= r["hi"]
        assert c["vs_best_btyd"]["normalized_gini"]["vs"] in ("bgnbd_gg", "paretonbd_gg")
    checks = result["checks"]
    assert "December quarter's total within 15%" in checks
    assert list(checks["December quarter's total within 15%"]["values"]) == ["2021-10-01"]


@pytest.mark.heavy
def test_readme_section_shows_each_world(result, tmp_path):
    import json

    doc = {"title": "synthetic retailers", "description": "test", "worlds": {"tiny_seasonal": result}}
    (tmp_path / "backtest_synthetic_retailer.json").write_text(json.dumps(doc))
    text = render(tmp_path)
    assert "*World `tiny_seasonal`*: 300 customers (2 cohorts from 2020-01-01 to 2021-01-01)" in text
    assert "| true_btyd |" in text and "minus the true model nGini" in text
    assert "December quarter's total within 15%" in text
    assert "The true-parameter model (true_btyd) on the targets read from these tables: December quarter" in text


def _rows(tiercast_total: float, tiercast_gini: float, churn: float = 0.5) -> list[dict]:
    rows = []
    for method, gini, brier in (
        ("bgnbd_gg", 0.60, 0.20),
        ("paretonbd_gg", 0.61, 0.21),
        ("tiercast", tiercast_gini, 0.19),
    ):
        rows.append(
            {
                "cutoff": "2022-10-01",
                "method": method,
                "normalized_gini": gini,
                "roc_auc": 0.7,
                "brier": brier,
                "mean_churn_probability": churn,
                "realized_churn": 0.5,
                "predicted_total": tiercast_total if method == "tiercast" else 100.0,
                "actual_total": 100.0,
            }
        )
    return rows


def _comparison(lo: float) -> list[dict]:
    r = {"diff": lo + 0.01, "lo": lo, "hi": lo + 0.02}
    both = {"normalized_gini": {"vs": "paretonbd_gg", **r}, "roc_auc": {"vs": "bgnbd_gg", **r}}
    return [{"cutoff": "2022-10-01", "vs_best_btyd": both, "vs_true": both}]


def test_checks_say_met_or_missed():
    seasonal, flat = WORLDS["seasonal"], WORLDS["btyd_cohorts"]
    good = world_checks(seasonal, _rows(110.0, 0.62), _comparison(-0.005))
    assert all(c["met"] for c in good.values()), good
    bad = world_checks(seasonal, _rows(80.0, 0.60, churn=0.6), _comparison(-0.03))
    assert not bad["December quarter's total within 15%"]["met"]
    assert not bad["predicted / actual total within 0.85-1.15"]["met"]
    assert not bad["|mean churn probability - realized| <= 0.05"]["met"]
    assert not bad["no cutoff where tiercast - best BTYD is wholly below 0 (nGini, AUC)"]["met"]
    assert not bad["nGini and AUC at or above the best fitted BTYD at every cutoff (point estimates)"]["met"]
    truth = "matches the true model within noise (no nGini / AUC interval of tiercast - true wholly below 0)"
    assert world_checks(flat, _rows(100.0, 0.62), _comparison(-0.005))[truth]["met"]
    assert not world_checks(flat, _rows(100.0, 0.62), _comparison(-0.03))[truth]["met"]


def test_a_tie_up_to_rounding_is_at_the_best_btyd_and_a_loss_of_1e_6_is_not():
    """Two metrics of one ranking from different scores differ by float rounding only (1e-16 on an AUC)."""
    point = "nGini and AUC at or above the best fitted BTYD at every cutoff (point estimates)"
    tie = world_checks(WORLDS["seasonal"], _rows(110.0, 0.61 - 2e-16), _comparison(-0.005))
    assert tie[point]["met"]
    assert not world_checks(WORLDS["seasonal"], _rows(110.0, 0.61 - 1e-6), _comparison(-0.005))[point]["met"]


def test_row_checks_read_any_method_from_the_table():
    """The best fitted BTYD model is at the best by definition; the other one is 0.01 nGini below it (hand-made
    rows: BG/NBD 0.60, Pareto/NBD 0.61), and BG/NBD's Brier is BG/NBD's."""
    point = "nGini and AUC at or above the best fitted BTYD at every cutoff (point estimates)"
    rows = _rows(110.0, 0.62)
    best = row_checks(WORLDS["seasonal"], rows, "paretonbd_gg")
    assert best[point]["met"] and best[point]["values"]["2022-10-01"] == {"normalized_gini": 0.0, "roc_auc": 0.0}
    other = row_checks(WORLDS["seasonal"], rows, "bgnbd_gg")
    assert not other[point]["met"]
    assert other[point]["values"]["2022-10-01"]["normalized_gini"] == pytest.approx(-0.01)
    assert other["Brier at or below BG/NBD's"]["met"]
    assert other["predicted / actual total within 0.85-1.15"]["values"] == {"2022-10-01": 1.0}
    assert not row_checks(WORLDS["seasonal"], _rows(110.0, 0.62, churn=0.6), "bgnbd_gg")[
        "|mean churn probability - realized| <= 0.05"
    ]["met"]


def test_a_year_long_horizon_has_no_december_quarter_check():
    checks = world_checks(WORLDS["seasonal_small_365"], _rows(110.0, 0.62), _comparison(-0.005))
    assert "December quarter's total within 15%" not in checks and all(c["met"] for c in checks.values())
