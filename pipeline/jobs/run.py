"""The main job behind ``tiercast run``: ingest -> train and backtest -> register -> score everyone -> lists."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from tiercast.features.contract import CUSTOMER_ID
from tiercast.pipeline.config import Config, ConfigError, build_playbook
from tiercast.pipeline.engine.session import engine_resident
from tiercast.pipeline.ingest.loader import Transactions, features_at, load_transactions
from tiercast.pipeline.jobs.at_risk_list import at_risk, team_list
from tiercast.pipeline.jobs.score import explain_features, load_model, score_features
from tiercast.pipeline.jobs.train import TrainResult, train
from tiercast.pipeline.terminal import step
from tiercast.pipeline.tracking.registry import PromotionDecision, promote, promotion_settings
from tiercast.pipeline.tracking.runs import registry_lock, resolve_tracking_uri
from tiercast.pipeline.writers.files import check_writable_folder, on_success, write_csv, write_parquet


@dataclass(frozen=True)
class RunOutcome:
    data: Transactions
    quarantine_path: Path
    trained: TrainResult
    scores: pd.DataFrame
    scores_path: Path
    at_risk: pd.DataFrame
    at_risk_path: Path
    score_cutoff: pd.Timestamp
    tracking_uri: str
    promotion: PromotionDecision
    drift: pd.DataFrame
    drift_path: Path
    challenger_note: str | None  # when the new version, which wrote the scores, lost the promotion rule


def train_and_promote(config: Config, data: Transactions) -> tuple[TrainResult, PromotionDecision]:
    """Train and register a model on ``data``, then apply the promotion rule under the store's lock."""
    trained = train(config, data)  # shows its own stages
    with registry_lock(config):
        decision = promote(
            config.mlflow.registered_model,
            trained.run_id,
            window_from=trained.extra.get("window_from"),
            settings=promotion_settings(config),
        )
    return trained, decision


def challenger_note(name: str, decision: PromotionDecision) -> str | None:
    """One line when the scores come from a version that stayed ``@challenger``: ``run`` scores with the model it
    trained (its tiers, test metrics and reasons are that model's), and says how to score with the champion."""
    if decision.alias == "champion":
        return None
    return (
        f"the scores are version {decision.version}'s, which stays @challenger ({decision.reason}); "
        f"`tiercast score --model models:/{name}@champion` scores with the champion"
    )


def run_job(config: Config, data: Transactions | None = None) -> RunOutcome:
    """Everything ``tiercast run`` does, on ``data`` (the configured transactions loaded when None), on its
    engine. A quarantine held by ``data`` is put in place with the other outputs, once all of them are computed.
    The output folders are checked first: training registers a model, which an unusable folder must not follow."""
    check_writable_folder(config.outputs.dir)
    check_writable_folder(config.data.quarantine_path.parent)
    if data is None:
        with step(f"reading {config.data.source.describe()}"):
            data = load_transactions(config, hold=True)
    with on_success(getattr(data, "held_quarantine", None)):  # data read elsewhere may hold none
        return _run(config, data)


def run_cutoff(config: Config, data_start: pd.Timestamp, data_end: pd.Timestamp) -> pd.Timestamp:
    """Where ``run`` scores: ``score.cutoff``, else the data end (the midnight after the last day). One line when no
    purchase precedes it; a warning when it is before the data end, since the model is trained on all of it."""
    cutoff = pd.Timestamp(config.score.cutoff) if config.score.cutoff else data_end
    if cutoff <= data_start:
        raise ConfigError(
            f"score.cutoff {cutoff.date()}: no purchase before it (the data starts {data_start.date()}); "
            "give a later date"
        )
    if cutoff < data_end:
        warnings.warn(
            f"score.cutoff {cutoff.date()} is before the end of the data ({data_end.date()}) the model is "
            "trained on: it has seen what happened after the cutoff, so these scores look better than they would "
            "have been; leave score.cutoff unset to score at the data end, or set data.run_date to train as of "
            "the cutoff",
            stacklevel=3,
        )
    return cutoff


def _run(config: Config, data: Transactions) -> RunOutcome:
    """:func:`run_job` on loaded transactions."""
    quarantine_path = config.data.quarantine_path
    cutoff = run_cutoff(config, data.data_start, data.data_end)
    # training and scoring query the transactions at many cutoffs: from DuckDB's own copy, not the pandas frame
    data = replace(data, table=engine_resident(data.con, data.table))
    trained, decision = train_and_promote(config, data)
    with step(f"scoring every customer at {cutoff.date()}"):
        model = load_model(trained.model_uri)
        features = features_at(data, config, cutoff)
        scores = score_features(
            model, features, cutoff=cutoff, chunk_size=config.score.chunk_size, playbook=build_playbook(config)
        )
        out = config.outputs
        drift = model.scorer.drift(features, scores, threshold=config.score.psi_threshold)
    with step("ranking the at-risk list and explaining it"):
        tiers = out.tiers_listed(trained.scorer.scheme.names_)
        bands = out.churn_bands(config.playbook)
        ranked = at_risk(scores, tiers=tiers, top=out.at_risk_top, min_churn=out.at_risk_min_churn, bands=bands)
        listed = features.set_index(CUSTOMER_ID).loc[list(ranked[CUSTOMER_ID])].reset_index()
        ranked = pd.concat([ranked, explain_features(model, listed)], axis=1)
        ranked = team_list(ranked, horizon_days=config.horizon_days, currency=out.currency)
    # the outputs are written only once all of them are computed: a failure leaves the previous files alone
    scores_path = write_parquet(scores, out.dir / "scores.parquet")
    drift_path = write_csv(drift, out.dir / "drift.csv")
    at_risk_path = write_csv(ranked, out.dir / "at_risk.csv")
    return RunOutcome(
        data=data,
        quarantine_path=quarantine_path,
        trained=trained,
        scores=scores,
        scores_path=scores_path,
        at_risk=ranked,
        at_risk_path=at_risk_path,
        score_cutoff=cutoff,
        tracking_uri=resolve_tracking_uri(config),
        promotion=decision,
        drift=drift,
        drift_path=drift_path,
        challenger_note=challenger_note(trained.model_name, decision),
    )
