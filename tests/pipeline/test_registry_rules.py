"""The promotion rule on logged runs (:func:`tiercast.pipeline.tracking.registry.beats`) and the size of the window a
retrain is compared on, on stand-in runs and windows."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from tiercast.pipeline.tracking.registry import (
    COMPARABLE_TAGS,
    EvaluationWindow,
    PromotionSettings,
    _window_decision,
    beats,
    too_few_to_compare,
)

GINI, AUC = "test.tiercast.normalized_gini", "test.tiercast.roc_auc"


def _run(**metrics: float) -> SimpleNamespace:
    tags = dict.fromkeys(COMPARABLE_TAGS, "same")
    return SimpleNamespace(
        data=SimpleNamespace(metrics=metrics, params={"cutoffs.test_resolved": "2010-09-11"}, tags=tags)
    )


def test_better_on_one_metric_and_not_worse_on_the_other_beats_the_champion():
    assert beats(_run(**{GINI: 0.75, AUC: 0.72}), _run(**{GINI: 0.74, AUC: 0.72})) == (
        True,
        "beats the champion: normalized_gini +0.0100, roc_auc +0.0000",
    )
    ok, why = beats(_run(**{GINI: 0.75, AUC: 0.71}), _run(**{GINI: 0.74, AUC: 0.72}))
    assert not ok and why == "does not beat the champion: normalized_gini +0.0100, roc_auc -0.0100"


def test_a_run_without_test_metrics_is_named_not_shown_as_nan():
    ok, why = beats(_run(), _run(**{GINI: 0.74, AUC: 0.72}))
    assert not ok and "nan" not in why
    assert why == (
        "no held-out test metrics to compare (this run has no normalized_gini, roc_auc: a run without a test window)"
    )
    ok, why = beats(_run(**{GINI: 0.75, AUC: 0.72}), _run(**{GINI: 0.74}))
    assert not ok and "the champion has no roc_auc" in why


def _window(buyers: int, customers: int = 300) -> EvaluationWindow:
    rows = pd.DataFrame(
        {
            "future_value": [20.0] * buyers + [0.0] * (customers - buyers),
            "future_orders": [1.0] * buyers + [0.0] * (customers - buyers),
            "churned": [0.0] * buyers + [1.0] * (customers - buyers),
        }
    )
    ones = np.ones(customers)
    return EvaluationWindow(pd.Timestamp("2024-01-01"), 80, rows, ones, ones / 2)


def test_a_window_with_too_few_purchases_is_too_small_to_compare():
    settings = PromotionSettings()
    assert too_few_to_compare(_window(30), "1", "ab" * 16, settings) is None
    assert too_few_to_compare(_window(270), "1", "ab" * 16, settings) is None
    why = too_few_to_compare(_window(1), "1", "ab" * 16, settings)
    assert why == (
        "the window after champion v1's data (80 days from 2024-01-01) holds 1 purchase(s) by 1 of 300 customers: "
        "too few to compare (30 customers with a purchase and 30 without are needed); promote by hand with "
        f"`tiercast promote --run {'ab' * 16} --force`"
    )
    assert "29 of 300" in too_few_to_compare(_window(29), "1", "ab" * 16, settings)
    assert "271 of 300" in too_few_to_compare(_window(271), "1", "ab" * 16, settings)  # too few without a purchase


def test_a_retrain_compared_on_a_single_purchase_stays_challenger_and_says_why(monkeypatch):
    """The champion is not even loaded: the decision, its reason and the window's counts are logged to the run."""
    import mlflow

    logged: dict = {}

    class Client:
        def get_run(self, run_id: str) -> SimpleNamespace:
            return SimpleNamespace(data=SimpleNamespace(params={"cutoffs.test_resolved": "2023-12-01"}, tags={}))

        def log_batch(self, run_id: str, metrics=(), tags=(), params=()) -> None:  # noqa: ANN001 - MLflow's
            logged.update({m.key: m.value for m in metrics}, **{t.key: t.value for t in tags})

    def no_loading(uri: str) -> None:
        raise AssertionError(f"loaded {uri}")

    monkeypatch.setattr(mlflow.pyfunc, "load_model", no_loading)
    champion = SimpleNamespace(data=SimpleNamespace(tags={"data.data_last_timestamp": "2023-12-31 20:40:00"}))
    starts: list[pd.Timestamp] = []
    window_from = lambda start: starts.append(start) or _window(1)  # noqa: E731
    ok, why = _window_decision(Client(), "ab" * 16, "1", champion, window_from, PromotionSettings(), "tiercast")
    assert not ok and why.startswith("the window after champion v1's data") and "too few to compare" in why
    assert starts == [pd.Timestamp("2024-01-01")]
    assert logged["promotion.reason"] == why and logged["promotion.not_worse"] == "false"
    assert logged["promotion.champion_version"] == "1" and logged["promotion.too_few"] == "true"
    assert logged["promotion.window_buyers"] == 1 and logged["promotion.window_customers"] == 300


def test_the_same_data_with_another_horizon_says_why_the_runs_are_not_comparable():
    """A retrain on the champion's own data with another horizon has no window after the champion's data end, and
    its test cutoff differs: the reason names both (``run`` said only that there was no data to compare on)."""
    tags: dict = {}

    class Client:
        def get_run(self, run_id: str) -> SimpleNamespace:
            return _run_at("2010-10-11")

        def set_tag(self, run_id: str, key: str, value: str) -> None:
            tags[key] = value

    champion = _run_at("2010-09-11")
    champion.data.tags["data.data_last_timestamp"] = "2010-12-09 20:01:00"
    ok, why = _window_decision(Client(), "ab" * 16, "1", champion, lambda start: None, PromotionSettings(), "tiercast")
    assert not ok and tags["promotion.reason"] == why
    assert why == (
        "no data after champion v1's to compare on (its data ends 2010-12-10), and their test metrics are not "
        "comparable: different test cutoffs (2010-10-11 vs 2010-09-11)"
    )


def _run_at(test_cutoff: str) -> SimpleNamespace:
    run = _run()
    run.data.params["cutoffs.test_resolved"] = test_cutoff
    return run


def _run_with(kind: str, key: str, value: str | None) -> SimpleNamespace:
    """A run with ``value`` under ``key`` in its params or tags (``kind``); without it when None."""
    run = _run()
    if value is not None:
        getattr(run.data, kind)[key] = value
    return run


def test_a_retrain_with_another_number_of_tiers_says_so():
    """The clustering may choose another k on new data: the promotion reason says the tiers do not carry over."""
    from tiercast.pipeline.tracking.registry import tier_change

    def with_k(k: str | None) -> SimpleNamespace:
        return _run_with("params", "tiers.k_resolved", k)

    assert tier_change(with_k("2"), with_k("4"), "3") == (
        "the tiers change: 2 tiers (champion v3: 4), so tier-level monitoring and at-risk lists do not carry over"
    )
    assert tier_change(with_k("4"), with_k("4"), "3") is None
    assert tier_change(with_k("4"), with_k(None), "3") is None  # a champion logged before the parameter


def test_a_run_on_another_data_file_than_the_champion_s_is_named():
    """Another shop sharing the registered model name looks like a newer month to the rule: the reason names both
    files and the setting that keeps shops apart."""
    from tiercast.pipeline.tracking.registry import source_change

    def on(path: str | None) -> SimpleNamespace:
        return _run_with("tags", "data.data_path", path)

    assert source_change(on("/data/shop_b.parquet"), on("/data/shop_a.parquet"), "tiercast") == (
        "its data file is not the champion's (/data/shop_a.parquet -> /data/shop_b.parquet): if it is another "
        "shop's, give that config a registered model name of its own (`mlflow.registered_model`, not 'tiercast')"
    )
    assert source_change(on("/data/shop_a.parquet"), on("/data/shop_a.parquet"), "tiercast") is None
    assert source_change(on("/data/shop_a.parquet"), on(None), "tiercast") is None  # logged before the tag
