"""The main job behind ``tiercast run``: ingest -> train and backtest -> register -> score everyone -> lists."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tiercast.pipeline.config import Config
from tiercast.pipeline.files import write_csv, write_parquet
from tiercast.pipeline.io import IngestResult, read_transactions, write_quarantine
from tiercast.pipeline.score import at_risk, score_customers
from tiercast.pipeline.tracking import resolve_tracking_uri
from tiercast.pipeline.train import TrainResult, data_bounds, train


@dataclass(frozen=True)
class RunOutcome:
    ingest: IngestResult
    quarantine_path: Path
    trained: TrainResult
    scores: pd.DataFrame
    scores_path: Path
    at_risk: pd.DataFrame
    at_risk_path: Path
    score_cutoff: pd.Timestamp
    tracking_uri: str


def run_job(config: Config) -> RunOutcome:
    ingest = read_transactions(config.data)
    quarantine_path = write_quarantine(ingest, config.data.quarantine_path)
    trained = train(config, ingest)
    cutoff = pd.Timestamp(config.score.cutoff) if config.score.cutoff else data_bounds(ingest.accepted)[1]
    scores = score_customers(
        ingest.accepted,
        model_uri=trained.model_uri,
        cutoff=cutoff,
        windows_days=config.features.windows_days,
        horizon_days=config.horizon_days,
        chunk_size=config.score.chunk_size,
    )
    out = config.outputs
    scores_path = write_parquet(scores, out.dir / "scores.parquet")
    tiers = out.at_risk_tiers or tuple(trained.scorer.scheme.names_[:2])
    ranked = at_risk(scores, tiers=tiers, top=out.at_risk_top, min_churn=out.at_risk_min_churn)
    at_risk_path = write_csv(ranked, out.dir / "at_risk.csv")
    return RunOutcome(
        ingest=ingest,
        quarantine_path=quarantine_path,
        trained=trained,
        scores=scores,
        scores_path=scores_path,
        at_risk=ranked,
        at_risk_path=at_risk_path,
        score_cutoff=cutoff,
        tracking_uri=resolve_tracking_uri(config),
    )
