"""The ``at-risk`` command: the retention list from a scores file, with the config's at-risk settings and the
reasons of the listed customers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
from tiercast.pipeline.cli.arguments import out_file
from tiercast.pipeline.cli.base import (
    RunDateOpt,
    app,
    config_from,
    console,
    fail,
    handle_errors,
    load_data,
    one_line,
)
from tiercast.pipeline.config import Config, OutputConfig

# Unset, each takes the config's at-risk setting (what `tiercast run` lists), else the default named in its help.
TiersOpt = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated current tiers, e.g. platinum,gold (default: the config's outputs.at_risk_tiers, "
        "else its two top tiers but never the lowest, as `tiercast run` lists them; without --config, the same of "
        "the scores' tiers ordered by their current value)."
    ),
]
TopOpt = Annotated[
    int | None,
    typer.Option(
        help="How many customers to list, at least 1 (default: the config's outputs.at_risk_top, else 500).", min=1
    ),
]
MinChurnOpt = Annotated[
    float | None,
    typer.Option(
        help="Minimum churn probability, 0..1 (default: the config's outputs.at_risk_min_churn, else 0).",
        min=0.0,
        max=1.0,
    ),
]

AtRiskOutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Output CSV (default: at_risk.csv in the config's outputs.dir, else outputs/at_risk.csv).",
        callback=out_file,
    ),
]
ScoresOpt = Annotated[
    Path,
    typer.Option(
        help="scores.parquet written by `tiercast score` or `tiercast run`, or a folder of Parquet parts (one "
        "cutoff_date=... partition written by `tiercast score --engine spark`).",
        exists=True,
    ),
]
AtRiskConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config: adds reasons for the listed customers, currency and horizon.",
        exists=True,
        dir_okay=False,
    ),
]


@app.command("at-risk")
@handle_errors
def at_risk_cmd(
    scores: ScoresOpt,
    out: AtRiskOutOpt = None,
    tiers: TiersOpt = None,
    top: TopOpt = None,
    min_churn: MinChurnOpt = None,
    churn_bands: Annotated[
        str | None,
        typer.Option(help="Comma-separated churn bands to list (default: the config's, else all but the lowest)."),
    ] = None,
    config: AtRiskConfigOpt = None,
    run_date: RunDateOpt = None,
) -> None:
    """Rank customers of the top tiers whose churn risk is medium or high by value at risk (predicted value x churn
    probability).

    Scores written without reasons get them for the listed customers when a config is given: their features are
    rebuilt at the scores' cutoff and explained by the model version stamped on the scores.
    """
    from tiercast.features.contract import REASON_COLUMNS
    from tiercast.pipeline.jobs.at_risk_list import at_risk, team_list
    from tiercast.pipeline.writers.files import write_csv

    cfg = config_from(config) if config is not None else None
    if run_date is not None and cfg is None:
        fail("--run-date needs --config: without a config at-risk reads no transactions")
    out = _list_path(out, cfg)
    frame = _read_scores(scores)
    chosen = [t.strip() for t in tiers.split(",")] if tiers else None
    unknown = sorted(set(chosen or []) - set(frame[CURRENT_TIER].unique()) - set(frame[PREDICTED_TIER].unique()))
    if unknown:
        fail(f"{scores}: no customer is in tier(s) {', '.join(unknown)}")
    if cfg is None:
        chosen = chosen or _top_tiers(frame)
    else:  # what the config says `run` lists, unless an option says otherwise
        chosen = chosen or list(_config_tiers(cfg, frame, scores, config))
        top = cfg.outputs.at_risk_top if top is None else top
        min_churn = cfg.outputs.at_risk_min_churn if min_churn is None else min_churn
    bands = _churn_bands(frame, scores, churn_bands, cfg, config)
    ranked = at_risk(frame, tiers=chosen, top=500 if top is None else top, min_churn=min_churn or 0.0, bands=bands)
    has_reasons = all(c in ranked.columns for c in REASON_COLUMNS)
    if not has_reasons and cfg is not None and len(ranked):
        ranked = pd.concat([ranked, _reasons_for(ranked, cfg, run_date)], axis=1)
        has_reasons = True
    ranked = team_list(ranked, horizon_days=_horizon(frame, cfg), currency=cfg.outputs.currency if cfg else None)
    write_csv(ranked, out)
    note = " (no reasons: pass --config to add them)" if cfg is None and len(ranked) and not has_reasons else ""
    console.print(f"{len(ranked):,} customers at risk ({_band_filter(frame, bands)}) -> {out}{note}", highlight=False)


def _list_path(out: Path | None, cfg: Config | None) -> Path:
    """``--out``, by default at_risk.csv in the config's outputs.dir (without a config: in ./outputs); one line
    when it is not a .csv name."""
    out = out if out is not None else (cfg.outputs.dir if cfg is not None else Path("outputs")) / "at_risk.csv"
    if out.suffix.lower() != ".csv":  # a CSV under another name fools whatever opens it by its suffix
        fail(f"--out {out}: the at-risk list is written as CSV; give it a .csv name")
    return out


def _horizon(frame: pd.DataFrame, cfg: Config | None) -> int | None:
    """The days the scores cover, for the list's ``horizon_days``: the model's (scores written before it was a
    column name a version, looked up in the config's store), else the config's; a note when the two differ."""
    from tiercast.pipeline.jobs.at_risk_list import scores_horizon

    scored = scores_horizon(frame, registry=cfg is not None)
    if scored is not None and cfg is not None and scored != cfg.horizon_days:
        console.print(
            f"note: the scores are the model's {scored}-day predictions: the list says horizon_days {scored}, "
            f"not the config's {cfg.horizon_days}",
            highlight=False,
        )
    return scored or (cfg.horizon_days if cfg is not None else None)


def _config_tiers(cfg: Config, frame: pd.DataFrame, scores: Path, config: Path) -> tuple[str, ...]:
    """The tiers a config's at-risk list covers, as ``run`` chooses them, with the config's names that the scores
    use in place of the fitted scheme's; a one-line error when the scores use none of them (a model with other tier
    names), instead of listing every tier."""
    used = set(frame[CURRENT_TIER].unique()) | set(frame[PREDICTED_TIER].unique())
    listed = cfg.outputs.tiers_listed([n for n in cfg.tiers.tier_names() if n in used])
    if used.intersection(listed):
        return listed
    theirs = _tiers_best_first(frame)
    ours = cfg.outputs.at_risk_tiers or cfg.tiers.tier_names()
    which = "outputs.at_risk_tiers" if cfg.outputs.at_risk_tiers else "tiers"
    fail(
        f"--scores {scores}: its tiers are {', '.join(theirs)}, but the {which} of --config {config} are "
        f"{', '.join(ours)} (the scores come from a model with other tier names); choose the tiers to list with "
        f"--tiers, e.g. --tiers {','.join(theirs[:2])}, or pass the config the scores were made with"
    )


def _top_tiers(frame: pd.DataFrame) -> list[str]:
    """Without a config, the tiers listed as `run` lists them: the top of the scores' tiers (ordered by value),
    never the lowest; printed, as no config names them."""
    best_first = _tiers_best_first(frame)
    chosen = list(OutputConfig().tiers_listed(best_first))
    console.print(
        f"tiers {', '.join(chosen)}: the top of the scores' {len(best_first)} tiers (--tiers or --config to choose)",
        highlight=False,
    )
    return chosen


def _tiers_best_first(frame: pd.DataFrame) -> list[str]:
    """The current tiers of the scores, the most valuable (by mean current value, else predicted value) first."""
    column = next((c for c in ("current_value", PREDICTED_VALUE) if c in frame.columns), None)
    if column is None:
        return sorted(frame[CURRENT_TIER].astype(str).unique())
    means = frame.groupby(CURRENT_TIER, observed=True)[column].mean().sort_values(ascending=False, kind="mergesort")
    return [str(t) for t in means.index]


def _churn_bands(
    frame: pd.DataFrame, scores: Path, churn_bands: str | None, cfg: Config | None, config: Path | None
) -> tuple[str, ...]:
    """The churn bands to list: ``--churn-bands`` (each must occur in the scores), else the config's (whose bands
    must be those the scores were given), else every band but the lowest; one line when they cannot match."""
    from tiercast.pipeline.jobs.at_risk_list import bands_above_lowest

    if churn_bands is None:
        if cfg is None:
            return bands_above_lowest(frame)
        _config_bands_fit(frame, scores, cfg, config)
        return cfg.outputs.churn_bands(cfg.playbook)
    bands = tuple(b.strip() for b in churn_bands.split(",") if b.strip())
    if not bands:
        fail(f"--churn-bands {churn_bands!r}: names no band; give one or more, e.g. --churn-bands medium,high")
    unknown = sorted(set(bands) - set(frame[CHURN_BAND].unique()))
    if unknown:
        fail(f"{scores}: no customer is in churn band(s) {', '.join(unknown)}")
    return bands


def _config_bands_fit(frame: pd.DataFrame, scores: Path, cfg: Config, config: Path | None) -> None:
    """A one-line error when the scores hold a churn band the config's playbook does not have (scores made with
    other bands): the config's at-risk bands would then select the wrong customers, or none. A band of the config
    that no customer is in is no error: nobody may be at that risk."""
    from tiercast.pipeline.jobs.at_risk_list import bands_low_first

    theirs = list(bands_low_first(frame))
    ours = list(cfg.playbook.churn_bands)
    if set(theirs) <= set(ours):
        return
    fail(
        f"--scores {scores}: its churn bands are {', '.join(theirs)}, but the playbook.churn_bands of --config "
        f"{config} are {', '.join(ours)} (the scores were made with other bands); choose the bands to list with "
        f"--churn-bands, e.g. --churn-bands {','.join(theirs[1:] or theirs)}, or pass the config the scores were made "
        "with"
    )


def _band_filter(frame: pd.DataFrame, bands: tuple[str, ...]) -> str:
    """The churn bands listed, for the summary line; when none is (scores whose customers are all in one band,
    the lowest they hold), says so instead of an empty name."""
    from tiercast.pipeline.jobs.at_risk_list import bands_low_first

    if bands:
        return f"churn {'/'.join(bands)}"
    only = ", ".join(bands_low_first(frame))
    return f"no churn band above the lowest in the scores ({only}): pass --churn-bands or --config to choose"


def _reasons_for(ranked: pd.DataFrame, cfg: Config, run_date: str | None = None) -> pd.DataFrame:
    """Reasons for the listed customers: their features rebuilt at the scores' cutoff (from the data read as of
    ``run_date``, as every command reading the data), explained by the model version stamped on the scores."""
    from tiercast.pipeline.jobs.score import explain_customers
    from tiercast.pipeline.tracking.runs import setup_mlflow

    setup_mlflow(cfg, create=False)  # the scores' model is in it: a missing store is an error, not a new store
    data = load_data(cfg, run_date)
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
    """A scores file written by ``tiercast score``, or a folder of its Parquet parts (a ``cutoff_date=...``
    partition written on Spark) read as one table; else a one-line error naming what it lacks."""
    import pyarrow.lib

    folder = path.is_dir()
    what = "a folder of Parquet files" if folder else "a Parquet file"
    if folder and not _has_parts(path):
        fail(f"--scores {path}: a folder without Parquet files; pass the scores written by `tiercast score`")
    try:
        frame = pd.read_parquet(path)
    except (pyarrow.lib.ArrowException, OSError, ValueError) as exc:
        fail(f"--scores {path}: not {what} ({one_line(exc)}); pass the scores written by `tiercast score`")
    missing = [c for c in SCORES_FILE_COLUMNS if c not in frame.columns]
    if missing:
        fail(f"--scores {path}: not a scores file written by `tiercast score` (missing columns: {', '.join(missing)})")
    if folder and frame[CUTOFF].nunique() > 1:  # the root of the partitions, not one of them
        fail(
            f"--scores {path}: holds the scores of {frame[CUTOFF].nunique()} cutoffs; point it at one partition "
            "folder (cutoff_date=...)"
        )
    return frame


def _has_parts(folder: Path) -> bool:
    """Whether ``folder`` holds a file a Parquet dataset reads: one without a hidden (``.``) or bookkeeping (``_``,
    e.g. Spark's ``_SUCCESS``) name on its way."""
    return any(
        p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)
        for p in folder.rglob("*")
    )
