"""The promotion rule on logged runs (:func:`tiercast.pipeline.tracking.registry.beats`), on stand-in runs."""

from __future__ import annotations

from types import SimpleNamespace

from tiercast.pipeline.tracking.registry import COMPARABLE_TAGS, beats

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
