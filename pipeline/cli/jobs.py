"""Commands that run a job: ``run``, ``train``, ``score``, ``at-risk``, ``monitor``, ``tiers``, ``backtest``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd
import typer

from tiercast.features.contract import (
    CHURN_BAND,
    CURRENT_TIER,
    CUSTOMER_ID,
    CUTOFF,
    MODEL_NAME,
    MODEL_STAMP_COLUMNS,
    MODEL_VERSION,
    PREDICTED_TIER,
    PREDICTED_VALUE,
    SCORE_COLUMNS,
)
from tiercast.pipeline.cli.base import (
    ConfigOpt,
    EngineOpt,
    PredictionsOpt,
    RunDateOpt,
    app,
    config_from,
    console,
    date_arg,
    fail,
    handle_errors,
    load_data,
    local_out,
    model_arg,
    one_line,
    out_file,
)
from tiercast.pipeline.cli.render import print_tier_study, show_frame
from tiercast.pipeline.config import Config, build_playbook

if TYPE_CHECKING:
    from tiercast.pipeline.ingest.loader import Transactions


@app.command()
@handle_errors
def run(config: ConfigOpt, engine: EngineOpt = None, run_date: RunDateOpt = None) -> None:
    """The main job: ingest, train and backtest, register the model, score every customer, write the lists."""
    from tiercast.pipeline.cli.summary import print_run
    from tiercast.pipeline.jobs.run import run_job

    cfg = config_from(config, engine)
    outcome = run_job(cfg, load_data(cfg, run_date))
    print_run(console, outcome)


@app.command("train")
@handle_errors
def train_cmd(config: ConfigOpt, engine: EngineOpt = None, run_date: RunDateOpt = None) -> None:
    """Backtest and train on rolling cutoffs, log the run to MLflow, register the model and apply the promotion rule.

    With --engine spark the features and labels run on Spark; the training set (or engine.training_sample_customers
    of the customers) is collected to this machine for the model fit.
    """
    from tiercast.pipeline.cli.summary import print_training
    from tiercast.pipeline.jobs.run import train_and_promote

    cfg = config_from(config, engine)
    trained, decision = train_and_promote(cfg, load_data(cfg, run_date))
    print_training(console, trained, decision)


@app.command()
@handle_errors
def score(
    config: ConfigOpt,
    model: Annotated[
        str, typer.Option(help="Registered model URI, e.g. models:/tiercast@champion.", callback=model_arg)
    ],
    out: Annotated[
        str,
        typer.Option(
            help="Output Parquet file, or a table: duckdb://FILE::TABLE or "
            "postgresql://USER@HOST:PORT/DB::SCHEMA.TABLE (replaced atomically; drift CSV in outputs.dir)."
        ),
    ] = "outputs/scores.parquet",
    cutoff: Annotated[
        str | None,
        typer.Option(help="Scoring cutoff YYYY-MM-DD (default: the day after the data ends).", callback=date_arg),
    ] = None,
    reasons: Annotated[bool, typer.Option(help="Add the top-3 churn and value reasons per customer (slower).")] = False,
    engine: EngineOpt = None,
    run_date: RunDateOpt = None,
) -> None:
    """Score every customer with a registered model and write the scores atomically, to a Parquet file or a
    DuckDB / PostgreSQL table (a staging table swapped in within one transaction), model version and cutoff on
    every row.

    With --engine spark the features are built on Spark and scored by the model's spark_udf; --out is then a folder
    that gets the partition cutoff_date=<cutoff>/.
    """
    from tiercast.pipeline.tracking.runs import setup_mlflow
    from tiercast.pipeline.writers.tables import parse_table_target

    cfg = config_from(config, engine)
    target = parse_table_target(out)
    if target is None:
        local_out(cfg, Path(out))
    setup_mlflow(cfg)
    data = load_data(cfg, run_date)
    if cfg.engine.kind == "spark":
        if target is not None:
            fail(f"--engine spark writes a Parquet folder, not a table ({target.describe()})")
        _score_on_spark(cfg, data, model=model, out=Path(out), cutoff=cutoff, reasons=reasons)
        return
    _score_locally(cfg, data, model=model, out=out, target=target, cutoff=cutoff, reasons=reasons)


def _score_locally(
    cfg: Config, data: Transactions, *, model: str, out: str, target: Any, cutoff: str | None, reasons: bool
) -> None:
    """`tiercast score` on DuckDB: the scores to a Parquet file or a table, the drift CSV beside them."""
    from tiercast.pipeline.cli.summary import print_drift
    from tiercast.pipeline.ingest.loader import features_at
    from tiercast.pipeline.jobs.score import load_model, score_features
    from tiercast.pipeline.writers.files import write_csv, write_parquet
    from tiercast.pipeline.writers.tables import write_table

    when = pd.Timestamp(cutoff) if cutoff else data.data_end
    loaded = load_model(model)
    feats = features_at(data, cfg, when)
    scores = score_features(
        loaded,
        feats,
        cutoff=when,
        chunk_size=cfg.score.chunk_size,
        playbook=build_playbook(cfg),
        reasons=reasons,
    )
    drift = loaded.scorer.drift(feats, scores, threshold=cfg.score.psi_threshold)
    # written only once everything they depend on has succeeded: a failing run leaves the previous output alone
    if target is not None:
        write_table(scores, target)
        drift_file, shown = cfg.outputs.dir / f"{target.table}_drift.csv", target.describe()
    else:
        path = write_parquet(scores, Path(out))
        drift_file, shown = path.with_name(f"{path.stem}_drift.csv"), str(path)
    drift_path = write_csv(drift, drift_file)
    console.print(
        f"{len(scores):,} customers scored at {when.date()} with {model} (version {loaded.version}) -> {shown}",
        highlight=False,
    )
    print_drift(console, drift, drift_path)


def _score_on_spark(
    cfg: Config, data: Transactions, *, model: str, out: Path, cutoff: str | None, reasons: bool
) -> None:
    """`tiercast score --engine spark`: features on the cluster, spark_udf scores, partitioned Parquet."""
    from tiercast.pipeline.jobs.spark_score import resolve_spark_model, score_to_folder

    when = pd.Timestamp(cutoff) if cutoff else data.data_end
    loaded = resolve_spark_model(model)
    folder = score_to_folder(
        data.con,
        loaded,
        data.table,
        str(out),
        cutoff=when,
        windows_days=cfg.features.windows_days,
        horizon_days=cfg.horizon_days,
        satisfaction=data.satisfaction,
        reasons=reasons,
        playbook=build_playbook(cfg),
    )
    console.print(f"scored at {when.date()} on spark with {model} (version {loaded.version}) -> {folder}")


@app.command("at-risk")
@handle_errors
def at_risk_cmd(
    scores: Annotated[
        Path,
        typer.Option(help="scores.parquet written by `tiercast score` or `tiercast run`.", exists=True, dir_okay=False),
    ],
    out: Annotated[Path, typer.Option(help="Output CSV.", callback=out_file)] = Path("outputs/at_risk.csv"),
    tiers: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated current tiers, e.g. platinum,gold (default: the config's outputs.at_risk_tiers, "
            "else its two top tiers, as `tiercast run` lists them; without --config, every tier)."
        ),
    ] = None,
    top: Annotated[
        int | None,
        typer.Option(
            help="How many customers to list, at least 1 (default: the config's outputs.at_risk_top, else 500).", min=1
        ),
    ] = None,
    min_churn: Annotated[
        float | None,
        typer.Option(
            help="Minimum churn probability, 0..1 (default: the config's outputs.at_risk_min_churn, else 0).",
            min=0.0,
            max=1.0,
        ),
    ] = None,
    churn_bands: Annotated[
        str | None,
        typer.Option(help="Comma-separated churn bands to list (default: the config's, else all but the lowest)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Config: adds reasons for the listed customers, currency and horizon.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Rank customers of the top tiers whose churn risk is medium or high by value at risk (predicted value x churn
    probability).

    Scores written without reasons get them for the listed customers when a config is given: their features are
    rebuilt at the scores' cutoff and explained by the model version stamped on the scores.
    """
    from tiercast.features.contract import REASON_COLUMNS
    from tiercast.pipeline.jobs.score import at_risk, team_list
    from tiercast.pipeline.writers.files import write_csv

    frame = _read_scores(scores)
    chosen = [t.strip() for t in tiers.split(",")] if tiers else None
    unknown = sorted(set(chosen or []) - set(frame[CURRENT_TIER].unique()) - set(frame[PREDICTED_TIER].unique()))
    if unknown:
        fail(f"{scores}: no customer is in tier(s) {', '.join(unknown)}")
    cfg = config_from(config) if config is not None else None
    if cfg is not None:  # what the config says `run` lists, unless an option says otherwise
        chosen = chosen or list(_config_tiers(cfg, frame))
        top = cfg.outputs.at_risk_top if top is None else top
        min_churn = cfg.outputs.at_risk_min_churn if min_churn is None else min_churn
    bands = _churn_bands(frame, scores, churn_bands, cfg)
    ranked = at_risk(frame, tiers=chosen, top=500 if top is None else top, min_churn=min_churn or 0.0, bands=bands)
    has_reasons = all(c in ranked.columns for c in REASON_COLUMNS)
    if not has_reasons and cfg is not None and len(ranked):
        ranked = pd.concat([ranked, _reasons_for(ranked, cfg)], axis=1)
        has_reasons = True
    horizon, currency = (cfg.horizon_days, cfg.outputs.currency) if cfg is not None else (None, None)
    ranked = team_list(ranked, horizon_days=horizon, currency=currency)
    write_csv(ranked, out)
    note = "" if has_reasons else " (no reasons: pass --config to add them)"
    console.print(f"{len(ranked):,} customers at risk (churn {'/'.join(bands)}) -> {out}{note}", highlight=False)


def _config_tiers(cfg: Config, frame: pd.DataFrame) -> tuple[str, ...]:
    """The tiers a config's at-risk list covers: ``outputs.at_risk_tiers``, else the two top tiers of its names
    that the scores use (``run`` takes the fitted scheme's two top tiers)."""
    if cfg.outputs.at_risk_tiers:
        return cfg.outputs.at_risk_tiers
    used = set(frame[CURRENT_TIER].unique()) | set(frame[PREDICTED_TIER].unique())
    return tuple(n for n in cfg.tiers.tier_names() if n in used)[:2]


def _churn_bands(frame: pd.DataFrame, scores: Path, churn_bands: str | None, cfg: Config | None) -> tuple[str, ...]:
    """The churn bands to list: ``--churn-bands`` (each must occur in the scores), else the config's, else every
    band but the lowest."""
    from tiercast.pipeline.jobs.score import bands_above_lowest

    if churn_bands is None:
        return cfg.outputs.churn_bands(cfg.playbook) if cfg is not None else bands_above_lowest(frame)
    bands = tuple(b.strip() for b in churn_bands.split(",") if b.strip())
    unknown = sorted(set(bands) - set(frame[CHURN_BAND].unique()))
    if unknown:
        fail(f"{scores}: no customer is in churn band(s) {', '.join(unknown)}")
    return bands


def _reasons_for(ranked: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Reasons for the listed customers: their features rebuilt at the scores' cutoff, explained by the model
    version stamped on the scores."""
    from tiercast.pipeline.jobs.score import explain_customers
    from tiercast.pipeline.tracking.runs import setup_mlflow

    setup_mlflow(cfg)
    data = load_data(cfg)
    return explain_customers(
        data.accepted,
        ranked[CUSTOMER_ID],
        model_uri=f"models:/{ranked[MODEL_NAME].iloc[0]}/{ranked[MODEL_VERSION].iloc[0]}",
        cutoff=pd.Timestamp(ranked[CUTOFF].iloc[0]),
        windows_days=cfg.features.windows_days,
        horizon_days=cfg.horizon_days,
        satisfaction=data.satisfaction,
    )


#: What ``at-risk`` needs of a scores file: the tiers, churn and value at risk of each customer, and the model stamp.
SCORES_FILE_COLUMNS = (CUSTOMER_ID, *(c for c in SCORE_COLUMNS if c != PREDICTED_VALUE), *MODEL_STAMP_COLUMNS)


def _read_scores(path: Path) -> pd.DataFrame:
    """A scores file written by ``tiercast score``, or a one-line error naming what it lacks."""
    import pyarrow.lib

    try:
        frame = pd.read_parquet(path)
    except (pyarrow.lib.ArrowException, OSError, ValueError) as exc:
        fail(f"--scores {path}: not a Parquet file ({one_line(exc)}); pass the scores written by `tiercast score`")
    missing = [c for c in SCORES_FILE_COLUMNS if c not in frame.columns]
    if missing:
        fail(f"--scores {path}: not a scores file written by `tiercast score` (missing columns: {', '.join(missing)})")
    return frame


@app.command()
@handle_errors
def monitor(
    config: ConfigOpt,
    start: Annotated[str, typer.Option("--from", help="First month, YYYY-MM (tiers at its first day).")],
    end: Annotated[str, typer.Option("--to", help="Last month, YYYY-MM (included).")],
    model: Annotated[
        str | None,
        typer.Option(
            help="Registered model URI for the tier scheme and predictions, e.g. models:/tiercast@champion "
            "(default: the champion if one is registered, else a scheme refitted on the first month).",
            callback=model_arg,
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Output file, .parquet or .csv.", callback=out_file)] = Path(
        "outputs/monitor.parquet"
    ),
    engine: EngineOpt = None,
    run_date: RunDateOpt = None,
) -> None:
    """Per tier and month: customers, retention, orders, revenue share, average ticket; predicted vs realized."""
    from tiercast.pipeline.cli.render import print_monitor
    from tiercast.pipeline.jobs.monitor import run_monitor, write_monitor

    cfg = config_from(config, engine)
    frame, run = run_monitor(cfg, start=start, end=end, model_uri=model, data=load_data(cfg, run_date))
    path = write_monitor(frame, out)
    print_monitor(console, frame, run)
    console.print(f"{len(frame):,} rows ({frame['month'].nunique()} months) -> {path}")


@app.command()
@handle_errors
def tiers(
    config: ConfigOpt,
    n_tests: Annotated[
        int, typer.Option(help="Test cutoffs, cutoffs.step_days apart, ending at the test cutoff.", min=1)
    ] = 3,
    n_boot: Annotated[int, typer.Option(help="Bootstrap refits per scheme for the stability (ARI).", min=1)] = 20,
    n_test_alias: Annotated[int | None, typer.Option("--n-test", hidden=True, min=1)] = None,
    engine: EngineOpt = None,
    run_date: RunDateOpt = None,
) -> None:
    """Tier study: proposed tiers, predicted vs persistence tiers on a backtest, stability, alternative schemes."""
    from tiercast.pipeline.jobs.tier_study import tier_study
    from tiercast.pipeline.terminal import step

    cfg = config_from(config, engine)
    data = load_data(cfg, run_date)
    n_tests = n_test_alias if n_test_alias is not None else n_tests
    with step(f"tier study on {n_tests} test cutoffs"):
        study = tier_study(cfg, n_test=n_tests, n_boot=n_boot, data=data)
    print_tier_study(console, study)


@app.command()
@handle_errors
def backtest(
    config: ConfigOpt,
    n_tests: Annotated[int | None, typer.Option(help="Test cutoffs (default: models.backtest_n_tests).", min=1)] = None,
    n_boot: Annotated[
        int | None, typer.Option(help="Bootstrap replicates (default: models.backtest_n_boot).", min=0)
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the table to this CSV file.", callback=out_file)] = None,
    predictions: PredictionsOpt = None,
    n_test_alias: Annotated[int | None, typer.Option("--n-test", hidden=True, min=1)] = None,
    engine: EngineOpt = None,
    run_date: RunDateOpt = None,
) -> None:
    """Every model and baseline on the same test cutoffs: one table, logged as an MLflow run."""
    from tiercast.pipeline.jobs.backtest import log_backtest, run_backtest
    from tiercast.pipeline.jobs.predictions import write_predictions
    from tiercast.pipeline.terminal import step
    from tiercast.pipeline.writers.files import write_csv

    cfg = config_from(config, engine)
    data = load_data(cfg, run_date)
    n_tests = n_tests if n_tests is not None else n_test_alias
    with step(f"backtest on {n_tests or cfg.models.backtest_n_tests} test cutoffs (every model and baseline)"):
        table, preds = run_backtest(cfg, data, n_tests=n_tests, n_boot=n_boot, return_predictions=True)
    run_id = log_backtest(cfg, data, table)
    shown = ["method", "normalized_gini", "spearman", "mae", "top20_capture", "predicted_total", "actual_total"]
    shown += ["roc_auc", "pr_auc", "brier"]
    for cutoff, rows in table.groupby("test_cutoff", sort=True):
        first = rows.iloc[0]
        title = (
            f"Test cutoff {pd.Timestamp(cutoff).date()} ({cfg.horizon_days}-day horizon; {first['n_customers']:,} "
            f"customers; {first['n_train_cutoffs']} training cutoffs, validation {first['validation_cutoff'].date()})"
        )
        show_frame(rows[shown], title)
        tc = rows[rows["method"] == "tiercast"]
        if len(tc) and "gini_vs" in tc:
            r = tc.iloc[0]
            console.print(
                f"  tiercast - {r['gini_vs']}: nGini {r['gini_diff']:+.3f} [{r['gini_lo']:+.3f}, {r['gini_hi']:+.3f}]; "
                f"tiercast - {r['auc_vs']}: ROC AUC {r['auc_diff']:+.4f} [{r['auc_lo']:+.4f}, {r['auc_hi']:+.4f}] "
                "(95% paired bootstrap)",
                highlight=False,
            )
    if out is not None:
        write_csv(table, out)
        console.print(f"table -> {out}")
    if predictions is not None:
        write_predictions(preds, predictions)
        console.print(f"per-customer predictions ({len(preds):,} rows) -> {predictions}")
    console.print(f"MLflow run {run_id}")
