"""Model registry rules: which version is ``champion``, and side-by-side comparison of runs.

Two runs on the same data and test cutoff: the new version becomes champion only when its run beats the champion's
on the primary test metrics (value: normalized Gini; churn: ROC AUC) and is not worse on either.

A retrain on newer data (the monthly job): the champion is re-evaluated on the challenger's test window — the
champion pyfunc scores the same customers' feature rows against the same labels as the challenger's evaluation
model (which never saw that window). The champion's own training labels end at its data end, which for a monthly
retrain falls inside that window (two of its three months with a 90-day horizon; the champion then wins by about
0.1 normalized Gini on outcomes it has learned). So the window starts at the later of the test cutoff and the
champion's data end: feature rows at that instant, labels over the days left (at most a horizon), outcomes neither
model has seen. The new version is promoted unless it is worse: on either primary metric, the paired-bootstrap
95% interval over customers of challenger minus champion lies wholly below ``-margin`` (a point difference on a
month of a few hundred customers' outcomes is mostly noise, and a fresher model is the better default). The
differences, intervals and the decision are logged to the challenger's run. A window with fewer than 30 customers
with a purchase (or without one) is too small to judge: the retrain stays ``challenger``, its reason logged alike.

Otherwise the version is tagged ``challenger``. ``force`` overrides, and the override is recorded on the version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tiercast.features.contract import CHURN_PROBABILITY, CHURNED, FUTURE_ORDERS, FUTURE_VALUE, PREDICTED_VALUE
from tiercast.models.evaluation import normalized_gini, paired_bootstrap, roc_auc
from tiercast.models.scorer import FeatureSchemaError
from tiercast.pipeline.config import Config

PRIMARY_METRICS: tuple[str, ...] = ("test.tiercast.normalized_gini", "test.tiercast.roc_auc")
COMPARABLE_TAGS: tuple[str, ...] = ("data.data_sha256", "data.data_rows_accepted")
COMPARE_METRICS: tuple[tuple[str, str], ...] = (
    ("normalized_gini", "nGini"),
    ("spearman", "Spearman"),
    ("top10_capture", "top10"),
    ("mae", "MAE"),
    ("roc_auc", "AUC"),
    ("pr_auc", "PR AUC"),
    ("brier", "Brier"),
    ("tier_quadratic_kappa", "tier kappa"),
)


#: The run parameter holding the number of tiers the clustering chose.
TIER_COUNT_PARAM = "tiers.k_resolved"


@dataclass(frozen=True)
class PromotionDecision:
    version: str
    alias: str
    reason: str


@dataclass(frozen=True)
class EvaluationWindow:
    """Feature rows at ``cutoff`` with the realized labels (``future_value``, ``churned``) over the next
    ``label_days``, and the predictions of a run's evaluation model on them, row-aligned. Kept in memory only (it
    holds customer ids)."""

    cutoff: pd.Timestamp
    label_days: int
    rows: pd.DataFrame
    predicted_value: np.ndarray
    churn_probability: np.ndarray


@dataclass(frozen=True)
class PromotionSettings:
    """How far below the champion (on either primary metric) a retrain may land and still be promoted."""

    margin: float = 0.02
    n_boot: int = 200
    seed: int = 0
    #: Customers with a purchase, and without one, the window needs on each side: both primary metrics rank the
    #: buyers (Gini: their value; AUC: against the non-buyers), and a percentile bootstrap over fewer than about 30
    #: of either mostly resamples the same few customers, so its interval says nothing (one buyer gives [0, 0]).
    min_window_customers: int = 30


#: Primary metrics of the window comparison: (name, metric, target column, prediction).
_WINDOW_METRICS = (
    ("normalized_gini", normalized_gini, FUTURE_VALUE, PREDICTED_VALUE),
    ("roc_auc", roc_auc, CHURNED, CHURN_PROBABILITY),
)


def promotion_settings(config: Config) -> PromotionSettings:
    """The promotion rule's settings from a config."""
    m = config.mlflow
    return PromotionSettings(margin=m.promotion_margin, n_boot=m.promotion_n_boot, seed=config.seed)


def _data_end(run: Run) -> pd.Timestamp | None:
    """The exclusive end (midnight after the last transaction) of the data a run was trained on, if logged."""
    tags = run.data.tags
    if tags.get("data.data_last_timestamp"):
        return pd.Timestamp(tags["data.data_last_timestamp"]).normalize() + pd.Timedelta(days=1)
    return pd.Timestamp(tags["data.data_end"]) if tags.get("data.data_end") else None


def compare_on_window(
    champion: mlflow.pyfunc.PyFuncModel, window: EvaluationWindow, settings: PromotionSettings
) -> dict:
    """Challenger minus champion on the challenger's test window, per primary metric: the full-window difference,
    both values and the paired-bootstrap 95% interval over customers. Raises FeatureSchemaError when the champion
    needs feature columns the window's rows lack."""
    scorer = champion.unwrap_python_model().scorer
    scorer.check_schema(window.rows)
    theirs = champion.predict(window.rows[list(scorer.required_columns)], params={"reasons": False})
    ours = {PREDICTED_VALUE: window.predicted_value, CHURN_PROBABILITY: window.churn_probability}
    out: dict[str, dict[str, float]] = {}
    for name, metric, target, column in _WINDOW_METRICS:
        y = window.rows[target].to_numpy(dtype=float)
        a = np.asarray(ours[column], dtype=float)
        b = theirs[column].to_numpy(dtype=float)
        boot = paired_bootstrap(metric, y, a, b, n_boot=settings.n_boot, seed=settings.seed)
        out[name] = {"challenger": metric(y, a), "champion": metric(y, b), **boot}
    return out


def _window_decision(
    client: MlflowClient,
    run_id: str,
    champion_version: str,
    champion_run: Run,
    window_from: Callable[[pd.Timestamp], EvaluationWindow | None],
    settings: PromotionSettings,
    name: str,
) -> tuple[bool, str]:
    """Re-evaluate the champion on the challenger's test window — from the champion's data end when that falls
    inside it — log the comparison to the challenger's run, decide."""
    run = client.get_run(run_id)
    test = run.data.params.get("cutoffs.test_resolved", "none")
    champion_end = _data_end(champion_run)
    starts = [t for t in (champion_end, None if test == "none" else pd.Timestamp(test)) if t is not None]
    window = window_from(max(starts)) if starts else None
    if window is None:
        reason = _no_window_reason(run, champion_run, champion_version, champion_end)
        client.set_tag(run_id, "promotion.reason", reason)
        return False, reason
    too_few = too_few_to_compare(window, champion_version, run_id, settings)
    if too_few is not None:
        _log_too_few(client, run_id, champion_version, window, too_few)
        return False, too_few
    champion = mlflow.pyfunc.load_model(f"models:/{name}/{champion_version}")
    try:
        comparison = compare_on_window(champion, window, settings)
    except FeatureSchemaError as exc:  # e.g. a champion trained with another horizon: it predicts other outcomes
        reason = f"champion v{champion_version} cannot score the new rows ({exc}), so the two are not compared; "
        reason += f"to make this version the champion: `tiercast promote --run {run_id} --force`"
        client.set_tag(run_id, "promotion.reason", reason)
        return False, reason
    # worse = the whole 95% interval below -margin: a point difference on a month of outcomes is mostly noise
    ok = all(c["hi"] >= -settings.margin for c in comparison.values())
    text = ", ".join(
        f"{'nGini' if m == 'normalized_gini' else 'AUC'} {c['diff']:+.4f} [{c['lo']:+.4f}, {c['hi']:+.4f}]"
        for m, c in comparison.items()
    )
    verdict = "not worse than" if ok else f"worse by more than {settings.margin:g} than"
    reason = (
        f"{verdict} champion v{champion_version} on {window.label_days} days from {window.cutoff.date()} "
        f"(margin {settings.margin:g}): {text} ({len(window.rows):,} customers, 95% paired bootstrap)"
    )
    now = int(pd.Timestamp.now(tz="UTC").timestamp() * 1000)
    metrics = [Metric(f"promotion.{m}.{k}", float(v), now, 0) for m, c in comparison.items() for k, v in c.items()]
    metrics += [
        Metric("promotion.margin", settings.margin, now, 0),
        Metric("promotion.window_customers", float(len(window.rows)), now, 0),
        Metric("promotion.window_days", float(window.label_days), now, 0),
    ]
    tags = [
        RunTag("promotion.champion_version", str(champion_version)),
        RunTag("promotion.window_cutoff", str(window.cutoff.date())),
        RunTag("promotion.not_worse", str(ok).lower()),
        RunTag("promotion.reason", reason),
    ]
    client.log_batch(run_id, metrics=metrics, tags=tags, params=[Param("promotion.n_boot", str(settings.n_boot))])
    return ok, reason


def _no_window_reason(run: Run, champion_run: Run, version: str, champion_end: pd.Timestamp | None) -> str:
    """Why a retrain without data after the champion's cannot be judged; with the same data and another horizon
    (other test cutoffs) their logged test metrics cannot decide either, and the reason says so."""
    reason = f"no data after champion v{version}'s to compare on"
    why = _comparable(run, champion_run)
    if why is not None and champion_end is not None:
        reason += f" (its data ends {champion_end.date()}), and their test metrics are not comparable: {why}"
    return reason


def too_few_to_compare(window: EvaluationWindow, version: str, run_id: str, settings: PromotionSettings) -> str | None:
    """Why ``window`` is too small to judge a retrain against champion ``version`` (fewer than
    ``settings.min_window_customers`` customers with a purchase, or without one), or None when it is not."""
    rows, least = window.rows, settings.min_window_customers
    buyers = int((rows[FUTURE_VALUE] > 0).sum())
    if min(buyers, len(rows) - buyers) >= least:
        return None
    orders = int(rows[FUTURE_ORDERS].sum()) if FUTURE_ORDERS in rows.columns else buyers
    return (
        f"the window after champion v{version}'s data ({window.label_days} days from {window.cutoff.date()}) holds "
        f"{orders:,} purchase(s) by {buyers:,} of {len(rows):,} customers: too few to compare ({least} customers with "
        f"a purchase and {least} without are needed); promote by hand with `tiercast promote --run {run_id} --force`"
    )


def _log_too_few(client: MlflowClient, run_id: str, version: str, window: EvaluationWindow, reason: str) -> None:
    """Log a window too small to compare on to the challenger's run, as a comparison that did not promote."""
    now = int(pd.Timestamp.now(tz="UTC").timestamp() * 1000)
    counts = {"customers": len(window.rows), "buyers": (window.rows[FUTURE_VALUE] > 0).sum(), "days": window.label_days}
    tags = {"champion_version": str(version), "window_cutoff": str(window.cutoff.date()), "not_worse": "false"}
    client.log_batch(
        run_id,
        metrics=[Metric(f"promotion.window_{k}", float(v), now, 0) for k, v in counts.items()],
        tags=[RunTag(f"promotion.{k}", v) for k, v in {**tags, "too_few": "true", "reason": reason}.items()],
    )


def _logged_decision(run: Run, champion_version: str) -> tuple[bool, str] | None:
    """A window comparison logged to ``run`` against this champion version (by an earlier promotion), if any."""
    tags = run.data.tags
    if tags.get("promotion.champion_version") != str(champion_version) or "promotion.not_worse" not in tags:
        return None
    return tags["promotion.not_worse"] == "true", tags.get("promotion.reason", "logged window comparison")


def _champion(client: MlflowClient, name: str):
    try:
        return client.get_model_version_by_alias(name, "champion")
    except MlflowException:
        return None


def _comparable(a: Run, b: Run) -> str | None:
    """Why two runs' test metrics cannot be compared, or None when they can."""
    for tag in COMPARABLE_TAGS:
        if a.data.tags.get(tag) != b.data.tags.get(tag):
            return f"different input data ({tag})"
    pa, pb = a.data.params.get("cutoffs.test_resolved"), b.data.params.get("cutoffs.test_resolved")
    if pa != pb:
        return f"different test cutoffs ({pa} vs {pb})"
    return None


def beats(candidate: Run, champion: Run) -> tuple[bool, str]:
    """Not worse on any primary metric and better on at least one, on comparable data."""
    why_not = _comparable(candidate, champion)
    if why_not:
        return False, f"not comparable with the champion: {why_not}"
    diffs = {
        m: candidate.data.metrics.get(m, float("nan")) - champion.data.metrics.get(m, float("nan"))
        for m in PRIMARY_METRICS
    }
    missing = {
        side: [m.split(".")[-1] for m in PRIMARY_METRICS if pd.isna(run.data.metrics.get(m, float("nan")))]
        for side, run in (("this run", candidate), ("the champion", champion))
    }
    if any(missing.values()):
        which = "; ".join(f"{side} has no {', '.join(names)}" for side, names in missing.items() if names)
        return False, f"no held-out test metrics to compare ({which}: a run without a test window)"
    text = ", ".join(f"{m.split('.')[-1]} {d:+.4f}" for m, d in diffs.items())
    if all(d >= 0 for d in diffs.values()) and any(d > 0 for d in diffs.values()):
        return True, f"beats the champion: {text}"
    return False, f"does not beat the champion: {text}"


def version_of_run(client: MlflowClient, name: str, run_id: str) -> str:
    """The registered version logged by ``run_id`` (registering the run's model if it has none)."""
    versions = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    if versions:
        return str(max(int(v.version) for v in versions))
    return str(mlflow.register_model(f"runs:/{run_id}/model", name).version)


def promote(
    name: str,
    run_id: str,
    *,
    force: bool = False,
    window_from: Callable[[pd.Timestamp], EvaluationWindow | None] | None = None,
    settings: PromotionSettings | None = None,
) -> PromotionDecision:
    """Register the run's model (if needed) and move ``champion`` to it when it wins (or ``force``).

    Same data and test cutoff as the champion: the logged test metrics decide (:func:`beats`). Different data (a
    retrain): the champion is re-evaluated on a window built by ``window_from(start)`` (see the module docstring);
    without it, a comparison already logged to the run against this champion decides.
    """
    client = MlflowClient()
    version = version_of_run(client, name, run_id)
    current = _champion(client, name)
    if current is None:
        ok, reason = True, "no champion yet"
    elif str(current.version) == version:
        return PromotionDecision(version, "champion", "already the champion")
    else:
        run, champion_run = client.get_run(run_id), client.get_run(current.run_id)
        logged = _logged_decision(run, current.version)
        if _comparable(run, champion_run) is None:
            ok, reason = beats(run, champion_run)
        elif window_from is not None:
            ok, reason = _window_decision(
                client, run_id, current.version, champion_run, window_from, settings or PromotionSettings(), name
            )
        elif logged is not None:
            ok, reason = logged
        else:
            ok, reason = beats(run, champion_run)
            reason += " (retrain with `tiercast train` to compare on its test window)"
        if not ok and force:
            ok, reason = True, f"forced: {reason}"
            client.set_model_version_tag(name, version, "promotion", "forced")
        for changed in (tier_change(run, champion_run, current.version), source_change(run, champion_run, name)):
            if changed is not None:
                reason += f"; {changed}"
    alias = "champion" if ok else "challenger"
    client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, "promotion_reason", reason)
    return PromotionDecision(version, alias, reason)


def tier_change(run: Run, champion_run: Run, champion_version: str) -> str | None:
    """What a retrain changes in the tiers (their number, the ``tiers.k_resolved`` parameter), None when nothing:
    the clustering may choose another k on new data, and tier-level monitoring and at-risk lists then stop carrying
    over from the champion's, which the decision should say."""
    k, before = run.data.params.get(TIER_COUNT_PARAM), champion_run.data.params.get(TIER_COUNT_PARAM)
    if k is None or before is None or str(k) == str(before):
        return None
    return (
        f"the tiers change: {k} tiers (champion v{champion_version}: {before}), so tier-level monitoring and "
        "at-risk lists do not carry over"
    )


def source_change(run: Run, champion_run: Run, name: str) -> str | None:
    """A word of caution when a run's data file is not the champion's (``data.data_path`` tags; None when they are
    the same or one is unknown): the rule cannot tell a newer month of the same shop from another shop sharing the
    registered model name, and another shop's model would replace this one's champion."""
    path, before = run.data.tags.get("data.data_path"), champion_run.data.tags.get("data.data_path")
    if path is None or before is None or path == before:
        return None
    return (
        f"its data file is not the champion's ({before} -> {path}): if it is another shop's, give that config a "
        f"registered model name of its own (`mlflow.registered_model`, not '{name}')"
    )
