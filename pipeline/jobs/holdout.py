"""The test at the held-out cutoff: the evaluation model beside the naive baseline and the comparison methods, its
metrics, and the plots logged to the training run."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd

from tiercast.features.contract import (
    CHURN_PROBABILITY,
    CHURNED,
    CURRENT_TIER,
    FUTURE_VALUE,
    PREDICTED_TIER,
    PREDICTED_VALUE,
)
from tiercast.models.baselines import NaiveBaseline
from tiercast.models.evaluation import churn_metrics, tier_metrics, value_metrics
from tiercast.models.scorer import TiercastScorer
from tiercast.pipeline.tracking import plots


def evaluate(
    scorer: TiercastScorer,
    baseline: NaiveBaseline,
    test: pd.DataFrame,
    horizon_days: int,
    others: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[dict[str, dict[str, float]], pd.DataFrame]:
    """Test-cutoff metrics of tiercast and the naive baseline (value, churn, tiers vs persistence), plus value and
    churn metrics of ``others`` ((value, churn) predictions per method, e.g. the BTYD baselines and the plain GBM),
    and the per-customer predictions behind them (no ids) for plots."""
    scores = scorer.score(test)
    y_value = test[FUTURE_VALUE].to_numpy(dtype=float)
    y_churn = test[CHURNED].to_numpy(dtype=int)
    preds = pd.DataFrame(
        {
            "actual_value": y_value,
            CHURNED: y_churn,
            "tiercast_value": scores[PREDICTED_VALUE].to_numpy(),
            "naive_value": baseline.predict_value(test, horizon_days),
            "tiercast_churn": scores[CHURN_PROBABILITY].to_numpy(),
            "naive_churn": baseline.predict_churn(test, horizon_days),
            CURRENT_TIER: scores[CURRENT_TIER].to_numpy(),
            PREDICTED_TIER: scores[PREDICTED_TIER].to_numpy(),
            "realized_tier": scorer.scheme.assign(np.clip(y_value, 0.0, None)),
        }
    )
    order = list(scorer.scheme.names_)
    metrics = {}
    for name, tier_col in (("tiercast", PREDICTED_TIER), ("naive", CURRENT_TIER)):
        metrics[name] = {
            **value_metrics(y_value, preds[f"{name}_value"].to_numpy()),
            **churn_metrics(y_churn, preds[f"{name}_churn"].to_numpy()),
            "mean_churn_probability": float(preds[f"{name}_churn"].mean()),
            "realized_churn": float(y_churn.mean()),
            **{
                f"tier_{k}": v
                for k, v in tier_metrics(preds["realized_tier"].to_numpy(), preds[tier_col].to_numpy(), order).items()
            },
        }
    for name, (value, churn) in (others or {}).items():
        metrics[name] = {**value_metrics(y_value, np.asarray(value)), **churn_metrics(y_churn, np.asarray(churn))}
    return metrics, preds


def log_plots(scorer: TiercastScorer, preds: pd.DataFrame) -> None:
    """Gain, decile, calibration, Pareto, migration and importance plots of the test cutoff, as run artifacts."""
    figures = {
        "gain_curve.png": plots.gain_curve(
            preds["actual_value"].to_numpy(), {m: preds[f"{m}_value"].to_numpy() for m in ("tiercast", "naive")}
        ),
        "decile_chart.png": plots.decile_chart(preds["actual_value"].to_numpy(), preds["tiercast_value"].to_numpy()),
        "calibration_curve.png": plots.calibration_curve(
            preds[CHURNED].to_numpy(), {m: preds[f"{m}_churn"].to_numpy() for m in ("tiercast",)}
        ),
        "pareto_curve.png": plots.pareto_curve(preds["actual_value"].to_numpy()),
        "tier_shares.png": plots.tier_bars(
            scorer.scheme.names_, preds["realized_tier"], preds["actual_value"].to_numpy()
        ),
        "tier_migration.png": plots.migration_heatmap(preds[CURRENT_TIER], preds[PREDICTED_TIER], scorer.scheme.names_),
        "importance_value.png": plots.feature_importance(
            list(scorer.value_model.feature_names_in_),
            scorer.value_model.feature_importances_,
            "Value model: feature importance",
        ),
        "importance_churn.png": plots.feature_importance(
            list(scorer.churn_model.feature_names_in_),
            scorer.churn_model.feature_importances_,
            "Churn model: feature importance",
        ),
    }
    for name, fig in figures.items():
        mlflow.log_figure(fig, f"plots/{name}")
        plots.close(fig)
