"""A self-contained HTML report of a run: metrics beside baselines, tiers, plots and the top at-risk customers.

Images are embedded as base64 PNGs, so the single file can be mailed or archived and opens without a server.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.file_utils import local_file_uri_to_path

from tiercast.features.contract import (
    ACTION,
    CHURN_BAND,
    CHURN_PROBABILITY,
    CHURN_REASONS,
    CURRENT_TIER,
    CUSTOMER_ID,
    CUTOFF,
    MODEL_NAME,
    MODEL_VERSION,
    PREDICTED_TIER,
    PREDICTED_VALUE,
    VALUE_AT_RISK,
)
from tiercast.pipeline.jobs.comparisons import METHOD_LABELS
from tiercast.pipeline.tracking.registry import COMPARE_METRICS
from tiercast.pipeline.writers.files import atomic_output

_PLOTS = (
    ("tier_shares.png", "Tier size and revenue share"),
    ("pareto_curve.png", "Pareto revenue curve"),
    ("tier_migration.png", "Tier migration (current -> predicted)"),
    ("gain_curve.png", "Gain curve"),
    ("decile_chart.png", "Decile chart"),
    ("calibration_curve.png", "Churn calibration"),
    ("importance_value.png", "Value model: feature importance"),
    ("importance_churn.png", "Churn model: feature importance"),
)
_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:.2rem} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem} th,td{border:1px solid #ddd;padding:.3rem .6rem}
th{background:#f4f4f4} td.num{text-align:right}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:1rem} figure{margin:0} img{max-width:100%}
figcaption{font-weight:600;margin-bottom:.3rem}
"""


def _table(frame: pd.DataFrame, float_format: str = "{:,.3f}") -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for rec in frame.itertuples(index=False):
        cells = []
        for v in rec:
            if isinstance(v, float):
                cells.append(f'<td class="num">{"-" if v != v else float_format.format(v)}</td>')  # NaN: not measured
            else:
                cells.append(f"<td>{html.escape('' if v is None else str(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _metrics_frame(metrics: dict[str, float]) -> pd.DataFrame:
    order = list(METHOD_LABELS)
    found = {k.split(".")[1] for k in metrics if k.startswith("test.")}
    models = sorted(found, key=lambda m: (order.index(m) if m in order else len(order), m))
    rows = []
    for key, label in COMPARE_METRICS:
        rows.append({"metric": label, **{METHOD_LABELS.get(m, m): metrics.get(f"test.{m}.{key}") for m in models}})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Report:
    """A report's HTML page and one-line notes on what it leaves out (sections it could not build, a list of
    another model version), for the command to print."""

    html: str
    notes: tuple[str, ...] = ()


def build_report(
    run_id: str, at_risk_path: Path | None = None, top: int = 25, registered_model: str = "tiercast"
) -> Report:
    """The report of one MLflow run (uses the current tracking URI). The at-risk section lists ``at_risk_path``
    only when the list was made by the version of ``registered_model`` this run registered."""
    client = MlflowClient()
    run = client.get_run(run_id)
    notes: list[str] = []
    parts = [
        f"<h1>tiercast run {html.escape(run_id[:8])}</h1>",
        f'<p class="sub">test cutoff {html.escape(run.data.params.get("cutoffs.test_resolved", "?"))}, '
        f"horizon {html.escape(run.data.params.get('horizon_days', '?'))} days, "
        f"{html.escape(run.data.tags.get('data.data_customers', '?'))} customers, "
        f"data {html.escape(run.data.tags.get('data.data_first_timestamp', '?'))} .. "
        f"{html.escape(run.data.tags.get('data.data_last_timestamp', '?'))}</p>",
        "<h2>Test-cutoff metrics, tiercast beside the baselines</h2>",
        _table(_metrics_frame(run.data.metrics)),
        *_artifact_sections(run, notes),
    ]
    if at_risk_path is not None and Path(at_risk_path).is_file():
        versions = sorted(
            (str(v.version) for v in client.search_model_versions(f"name='{registered_model}' and run_id='{run_id}'")),
            key=int,
        )
        parts += _at_risk_section(Path(at_risk_path), top, (registered_model, versions), notes)
    body = "\n".join(parts)
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>tiercast report {run_id[:8]}</title>'
        f"<style>{_CSS}</style></head><body>{body}</body></html>"
    )
    return Report(page, tuple(notes))


def _artifact_sections(run: Run, notes: list[str]) -> list[str]:
    """The Tiers table and the plots from the run's artifacts; a note for each section that cannot be built (the
    artifact folder moved or deleted), rather than a page that silently lacks them."""
    parts: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=tmp))
        except (MlflowException, OSError):
            local = Path(tmp) / "unreadable"
        scheme_file = local / "scheme.json"
        if scheme_file.is_file():
            tiers = pd.DataFrame(json.loads(scheme_file.read_text(encoding="utf-8"))["tiers"])
            for col in ("share", "revenue_share"):
                if col in tiers.columns:
                    tiers[col] = tiers[col].map("{:.1%}".format)
            parts += ["<h2>Tiers</h2>", _table(tiers, "{:,.2f}")]
        else:
            notes.append(f"Tiers section left out: {_missing_artifact(run, 'scheme.json')}")
            parts += ["<h2>Tiers</h2>", f"<p>{html.escape(notes[-1])}</p>"]
        figures = []
        for name, caption in _PLOTS:
            png = local / "plots" / name
            if png.is_file():
                data = base64.b64encode(png.read_bytes()).decode("ascii")
                figures.append(
                    f'<figure><figcaption>{caption}</figcaption><img alt="{caption}" '
                    f'src="data:image/png;base64,{data}"></figure>'
                )
    if figures:
        parts += ["<h2>Plots</h2>", f'<div class="grid">{"".join(figures)}</div>']
    else:
        notes.append(f"Plots section left out: {_missing_artifact(run, 'plots/')}")
        parts += ["<h2>Plots</h2>", f"<p>{html.escape(notes[-1])}</p>"]
    return parts


def _missing_artifact(run: Run, name: str) -> str:
    """Why a run's artifact cannot be read: its artifact folder is gone, or the run never logged it."""
    uri = run.info.artifact_uri
    local = Path(local_file_uri_to_path(uri)) if uri.startswith("file:") else None
    if local is not None and not local.is_dir():
        return f"the run's artifact folder {local} does not exist (was the MLflow artifact folder moved or deleted?)"
    return f"the run logged no {name} (artifacts at {uri})"


def _list_stamp(ranked: pd.DataFrame, *, named: bool = True) -> str:
    """Which model version (and registered model, when ``named`` and the list says) and cutoff made an at-risk
    list, as its rows say."""
    if not len(ranked):
        return "no rows"
    if MODEL_VERSION not in ranked.columns:
        return "a list without a model_version column"
    versions = ", ".join(sorted(ranked[MODEL_VERSION].astype(str).unique()))
    names = ", ".join(sorted(_list_names(ranked))) if named else ""
    cutoffs = ", ".join(sorted(ranked[CUTOFF].astype(str).unique())) if CUTOFF in ranked.columns else "?"
    return f"the list of model version {versions}{f' of {names}' if names else ''} at cutoff {cutoffs}"


def _list_names(ranked: pd.DataFrame) -> set[str]:
    """The registered model names an at-risk list's rows carry (none for a list written before the column)."""
    return set(ranked[MODEL_NAME].astype(str)) - {""} if MODEL_NAME in ranked.columns else set()


def _at_risk_section(at_risk_path: Path, top: int, registered: tuple[str, list[str]], notes: list[str]) -> list[str]:
    """The top customers of an at-risk list made by a version of the registered model this run registered
    (``registered``: its name and the versions), headed with that version, its cutoff, the currency and horizon of
    the values; for a list of another model or version (or a run that registered none), no rows and a note saying
    which list the file holds. A list without a ``model_name`` column is matched on the version alone."""
    model_name, run_versions = registered
    ranked = pd.read_csv(
        at_risk_path, dtype={CUSTOMER_ID: str, MODEL_NAME: str, MODEL_VERSION: str}, keep_default_na=False
    )
    listed = set(ranked[MODEL_VERSION].astype(str)) if MODEL_VERSION in ranked.columns else set()
    names = _list_names(ranked)
    if not listed or not listed <= set(run_versions) or not names <= {model_name}:
        made = f"version {', '.join(run_versions)}" if run_versions else "no model version"
        note = (
            f"at-risk list left out: {at_risk_path} holds {_list_stamp(ranked)}, but this run registered {made} "
            f"of {model_name}; `tiercast report --at-risk FILE` names the run's list"
        )
        notes.append(note)
        return ["<h2>Customers at risk</h2>", f"<p>{html.escape(note)}.</p>"]
    stamp = _list_stamp(ranked, named=False).removeprefix("the list of ")
    return _at_risk_table(ranked.head(top), stamp)


def _at_risk_table(ranked: pd.DataFrame, stamp: str) -> list[str]:
    """The heading and table of the top customers at risk, with the currency and horizon of their values."""
    keep = [
        c
        for c in (
            "rank",
            CUSTOMER_ID,
            CURRENT_TIER,
            PREDICTED_TIER,
            PREDICTED_VALUE,
            CHURN_PROBABILITY,
            VALUE_AT_RISK,
            CHURN_REASONS,
            ACTION,
        )
        if c in ranked.columns
    ]
    unit = [f"{ranked['currency'].iloc[0]}"] if "currency" in ranked.columns and len(ranked) else []
    if "horizon_days" in ranked.columns and len(ranked):
        unit.append(f"value over the next {int(ranked['horizon_days'].iloc[0])} days")
    title = f"Top {len(ranked)} customers at risk, {stamp}" + (f" ({', '.join(unit)})" if unit else "")
    keep = [c for c in keep if c != CHURN_PROBABILITY] + ([CHURN_BAND] if CHURN_BAND in ranked else [])
    shown = ranked[keep].copy()
    if CHURN_PROBABILITY in ranked.columns:
        shown.insert(keep.index(VALUE_AT_RISK), "churn risk", ranked[CHURN_PROBABILITY].map("{:.0%}".format))
    return [f"<h2>{html.escape(title)}</h2>", _table(shown, "{:,.0f}")]


def write_report(
    run_id: str, out: Path, at_risk_path: Path | None = None, registered_model: str = "tiercast"
) -> Report:
    """Write the report of a run to ``out`` atomically; returns it, with its notes on what it left out."""
    report = build_report(run_id, at_risk_path, registered_model=registered_model)
    with atomic_output(out) as tmp:
        tmp.write_text(report.html, encoding="utf-8")
    return report
