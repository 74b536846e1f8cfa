"""``tiercast monitor``: per tier and month, who stayed, what they spent, and how the predictions held up.

Definitions (month ``m`` is a calendar month; its cutoff ``c_m`` is midnight on its first day; ``H`` is the horizon):

* **Tier in month m** = the tier scheme applied to the customer's realized value over ``[c_m - H days, c_m)`` (the
  ``spend_{H}d`` feature at cutoff ``c_m``): the *current tier* at ``c_m``, exactly as ``tiercast score`` assigns it.
  Every customer with a transaction before ``c_m`` has a tier; those with no (or negative) value in the window are
  in the lowest tier, so the lowest tier also holds lapsed customers.
* **Activity** is measured over the month itself, ``[c_m, c_{m+1})``, for the customers of each tier:
  ``retained`` = customers with at least one purchase (order with net > 0) in the month, ``retention_rate`` =
  retained / customers; ``orders`` = their purchases in the month; ``revenue`` = their net spend in the month
  (refunds netted); ``avg_ticket`` = revenue / orders (NaN without a purchase). Monthly retention is observable for
  every month, including the latest; retention over the full horizon is ``1 - realized_churn``.
* ``(new)`` is a pseudo-tier: customers whose first transaction falls in the month (they had no tier at ``c_m``).
  ``revenue_share`` = tier revenue / all revenue of the month, so the shares of a month (tiers and ``(new)``) sum to 1.
* **Predictions** (only with a model): the model scores every customer at ``c_m``; ``predicted_value`` and
  ``predicted_churn`` are the tier means of predicted net spend and churn probability over ``[c_m, c_m + H)``.
* **Realized outcome** over the same ``[c_m, c_m + H)``, only when that window ends inside the data:
  ``realized_value`` = tier mean of net spend (0 without a transaction), ``realized_churn`` = share of the tier with
  no purchase. Computed with or without a model.
* ``month_complete`` is False when the month runs past the end of the data (its activity is partial).

The tier scheme comes from a registered model (``--model``, default ``models:/<registered_model>@champion``); when no
model is given and none is registered, a :class:`~tiercast.models.tiers.scheme.TierScheme` is refitted on the values at
the first month's cutoff (the returned frame's ``attrs["tier_scheme"]`` says which). Windows come from the feature
and label builders, so :mod:`tiercast.features.as_of` stays the only place that compares times.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from tiercast.features.build import Frame, as_table, build_features
from tiercast.features.contract import (
    CHURN_PROBABILITY,
    CHURNED,
    CUSTOMER_ID,
    FUTURE_ORDERS,
    FUTURE_VALUE,
    PREDICTED_VALUE,
    TIER,
    spend_column,
)
from tiercast.models.tiers.scheme import TierScheme
from tiercast.pipeline.config import Config
from tiercast.pipeline.ingest.loader import Transactions, load_transactions
from tiercast.pipeline.jobs.model_fit import tier_scheme
from tiercast.pipeline.jobs.month_queries import MonthQueries
from tiercast.pipeline.jobs.results import MonitorRun
from tiercast.pipeline.jobs.score import LoadedModel, ModelLoadError, load_model, score_features
from tiercast.pipeline.tracking.runs import missing_store, resolve_tracking_uri, use_store
from tiercast.pipeline.writers.files import write_csv, write_parquet

#: Pseudo-tier of the customers whose first transaction falls in the month.
NEW_TIER = "(new)"
MONITOR_COLUMNS = (
    "month",
    TIER,
    "customers",
    "retained",
    "retention_rate",
    "orders",
    "revenue",
    "revenue_share",
    "avg_ticket",
    PREDICTED_VALUE,
    "realized_value",
    "predicted_churn",
    "realized_churn",
    "month_complete",
)
_PER_CUSTOMER = (PREDICTED_VALUE, "realized_value", "predicted_churn", "realized_churn")


class MonitorError(ValueError):
    """A monitor request that cannot be answered (bad month, months outside the data, unusable model)."""


# ---------------------------------------------------------------------------------------------------------- months


def parse_month(value: str | pd.Period) -> pd.Period:
    """A ``YYYY-MM`` string (or a Period) as a monthly Period."""
    if isinstance(value, pd.Period):
        return value.asfreq("M")
    text = str(value).strip()
    if not re.fullmatch(r"\d{4}-\d{2}", text):
        raise MonitorError(f"month must be YYYY-MM, got {value!r}")
    try:
        return pd.Period(text, freq="M")
    except ValueError:
        raise MonitorError(f"not a month: {value!r}") from None


def month_range(start: str | pd.Period, end: str | pd.Period) -> list[pd.Period]:
    """Months from ``start`` to ``end``, both included."""
    first, last = parse_month(start), parse_month(end)
    if last < first:
        raise MonitorError(f"--to {last} is before --from {first}")
    return list(pd.period_range(first, last, freq="M"))


def cutoff_of(month: pd.Period) -> pd.Timestamp:
    """Midnight on the first day of ``month``."""
    return month.start_time.as_unit("us")


def check_months(months: Sequence[pd.Period], *, data_start: pd.Timestamp, data_end: pd.Timestamp) -> None:
    """Raise when the first month has no history before it or the last starts at or after the data end."""
    first, last = cutoff_of(months[0]), cutoff_of(months[-1])
    if first <= data_start:
        raise MonitorError(
            f"--from {months[0]}: no transactions before {first.date()} (data start {data_start.date()}), "
            "so no customer has a tier yet"
        )
    if last >= data_end:
        raise MonitorError(f"--to {months[-1]}: starts at or after the end of the data ({data_end.date()})")


# ---------------------------------------------------------------------------------------------- per-month figures


def current_tiers(features: pd.DataFrame, scheme: TierScheme, value_column: str) -> pd.DataFrame:
    """``customer_id`` and current ``tier`` of each feature row (value NaN counts as 0, as in the scorer)."""
    values = features[value_column].to_numpy(dtype="float64", na_value=np.nan)
    tiers = scheme.assign(np.nan_to_num(values, nan=0.0))
    return pd.DataFrame({CUSTOMER_ID: features[CUSTOMER_ID].to_numpy(), TIER: tiers}).astype({TIER: "str"})


def summarize_month(
    current: pd.DataFrame,
    activity: pd.DataFrame,
    outcome: pd.DataFrame | None,
    *,
    tiers: Sequence[str],
) -> pd.DataFrame:
    """One row per tier (in scheme order) plus ``(new)``, for one month.

    ``current``: customer_id, tier, optionally predicted_value / predicted_churn (customers with history at the
    cutoff). ``activity``: labels over the month (customer_id, future_value, future_orders). ``outcome``: labels
    over the horizon, or None when the horizon is not complete. Customers absent from a label frame did nothing.
    """
    act = activity.set_index(CUSTOMER_ID)
    ids = current[CUSTOMER_ID]
    orders = ids.map(act[FUTURE_ORDERS]).fillna(0.0)
    per = pd.DataFrame(
        {
            TIER: pd.Categorical(current[TIER], categories=list(tiers)),
            "retained": (orders > 0).astype("int64"),
            "orders": orders,
            "revenue": ids.map(act[FUTURE_VALUE]).fillna(0.0),
        }
    )
    for col in (PREDICTED_VALUE, "predicted_churn"):
        per[col] = current[col].astype("float64") if col in current else np.nan
    if outcome is not None:
        out = outcome.set_index(CUSTOMER_ID)
        per["realized_value"] = ids.map(out[FUTURE_VALUE]).fillna(0.0)
        per["realized_churn"] = ids.map(out[CHURNED]).fillna(1.0)
    else:
        per["realized_value"] = per["realized_churn"] = np.nan
    grouped = per.groupby(TIER, observed=False, sort=True).agg(
        customers=("retained", "size"),
        retained=("retained", "sum"),
        orders=("orders", "sum"),
        revenue=("revenue", "sum"),
        **{col: (col, "mean") for col in _PER_CUSTOMER},
    )
    new = activity[~activity[CUSTOMER_ID].isin(ids)]
    new_row = pd.DataFrame(
        {"customers": [len(new)], "retained": [np.nan], "orders": [new[FUTURE_ORDERS].sum()]},
        index=[NEW_TIER],
    ).assign(revenue=float(new[FUTURE_VALUE].sum()), **dict.fromkeys(_PER_CUSTOMER, np.nan))
    rows = pd.concat([grouped.set_axis(list(tiers)).astype({"retained": "float64"}), new_row])
    return _ratios(rows.rename_axis(TIER).reset_index())


def _ratios(rows: pd.DataFrame) -> pd.DataFrame:
    """Add retention_rate, revenue_share and avg_ticket (NaN where the denominator is 0) and fix dtypes."""
    total = rows["revenue"].sum()
    rows = rows.assign(
        retention_rate=(rows["retained"] / rows["customers"]).where(rows["customers"] > 0),
        revenue_share=rows["revenue"] / total if total != 0 else np.nan,
        avg_ticket=(rows["revenue"] / rows["orders"]).where(rows["orders"] > 0),
    )
    return rows.astype(
        {TIER: "str", "customers": "int64", "retained": "Int64", "orders": "int64", "revenue": "float64"}
    )


def _month_rows(
    queries: MonthQueries,
    month: pd.Period,
    *,
    scheme: TierScheme,
    value_column: str,
    horizon_days: int,
    data_end: pd.Timestamp,
    model: LoadedModel | None,
    chunk_size: int,
) -> pd.DataFrame:
    cutoff = cutoff_of(month)
    features = queries.features(cutoff)
    current = current_tiers(features, scheme, value_column)
    if model is not None:
        scores = score_features(model, features, cutoff=cutoff, chunk_size=chunk_size)
        current[PREDICTED_VALUE] = scores[PREDICTED_VALUE].to_numpy(dtype="float64")
        current["predicted_churn"] = scores[CHURN_PROBABILITY].to_numpy(dtype="float64")
    activity = queries.labels(cutoff, month.days_in_month)
    horizon_done = cutoff + pd.Timedelta(days=horizon_days) <= data_end
    outcome = queries.labels(cutoff, horizon_days) if horizon_done else None
    rows = summarize_month(current, activity, outcome, tiers=scheme.names_)
    rows.insert(0, "month", str(month))
    rows["month_complete"] = cutoff_of(month + 1) <= data_end
    return rows


def monitor_table(
    tx: Frame,
    *,
    months: Sequence[pd.Period],
    scheme: TierScheme,
    horizon_days: int,
    data_end: pd.Timestamp,
    model: LoadedModel | None = None,
    windows_days: Iterable[int] = (),
    satisfaction: Frame | None = None,
    chunk_size: int = 200_000,
    con: ibis.BaseBackend | None = None,
) -> pd.DataFrame:
    """The monitor frame (:data:`MONITOR_COLUMNS`) of ``months`` for canonical transactions ``tx``.

    ``data_end`` is the exclusive end of the data (decides complete months and horizons). Tiers use
    ``spend_{horizon_days}d``, or the model's current-value column when a model is given (its horizon must match);
    ``windows_days`` only matter for the model's features. ``con``: the engine ``tx`` lives on (default: an
    embedded DuckDB).
    """
    if model is not None and model.scorer.horizon_days != horizon_days:
        raise MonitorError(f"model horizon {model.scorer.horizon_days} days != monitor horizon {horizon_days} days")
    value_column = model.scorer.current_value_column if model is not None else spend_column(horizon_days)
    con = con if con is not None else ibis.duckdb.connect()
    queries = MonthQueries(
        as_table(tx), con, horizon_days=int(horizon_days), windows_days=windows_days, satisfaction=satisfaction
    )
    frames = [
        _month_rows(
            queries,
            month,
            scheme=scheme,
            value_column=value_column,
            horizon_days=int(horizon_days),
            data_end=pd.Timestamp(data_end),
            model=model,
            chunk_size=chunk_size,
        )
        for month in months
    ]
    return pd.concat(frames, ignore_index=True)[list(MONITOR_COLUMNS)]


# ------------------------------------------------------------------------------------------- scheme and model


def refit_scheme(tx: Frame, config: Config, *, cutoff: pd.Timestamp, con: ibis.BaseBackend | None = None) -> TierScheme:
    """A tier scheme fitted, as in training, on every customer's value over the horizon before ``cutoff``."""
    h = config.horizon_days
    features = build_features(tx, cutoff=cutoff, windows_days=(), horizon_days=h, con=con)
    return tier_scheme(config).fit(np.clip(features[spend_column(h)].to_numpy(dtype="float64"), 0.0, None))


def _use_store(config: Config) -> str:
    return use_store(resolve_tracking_uri(config))


def resolve_model(config: Config, model_uri: str | None) -> LoadedModel | None:
    """The given model; without one, the registered champion if there is one, else None. A champion that is
    registered but cannot be loaded (its artifact folder gone) is an error, not a silent refit of the scheme.

    A missing sqlite store means nothing is registered: it is not created just to find that out.
    """
    uri = _use_store(config)
    no_store = missing_store(uri) is not None
    if model_uri is not None:
        if no_store:
            raise MonitorError(f"cannot load model {model_uri}: no MLflow store at {uri}")
        try:
            return load_model(model_uri)
        except (MlflowException, ValueError) as exc:
            raise MonitorError(f"cannot load model {model_uri}: {str(exc).splitlines()[0]}") from None
    if no_store:
        return None
    try:
        return load_model(f"models:/{config.mlflow.registered_model}@champion")
    except ModelLoadError as exc:
        raise MonitorError(f"cannot take the tier scheme from the champion: {exc}") from None
    except (MlflowException, ValueError):  # no such model or no champion yet
        return None


# --------------------------------------------------------------------------------------------------- entry points


def run_monitor(
    config: Config,
    *,
    start: str | pd.Period,
    end: str | pd.Period,
    model_uri: str | None = None,
    data: Transactions | None = None,
) -> tuple[pd.DataFrame, MonitorRun]:
    """Build the monitor frame of the transactions (``data``, or the configured ones loaded) for months
    ``start``..``end`` (YYYY-MM), on their engine, and the :class:`MonitorRun` beside it: the scheme's source, the
    horizon and the caveats (printed by :func:`tiercast.pipeline.cli.render.print_monitor`).
    """
    months = month_range(start, end)
    tx = data if data is not None else load_transactions(config)
    data_start, data_end = tx.bounds
    check_months(months, data_start=data_start, data_end=data_end)
    model = resolve_model(config, model_uri)
    if model is not None:
        scheme, horizon = model.scorer.scheme, model.scorer.horizon_days
        source = f"models:/{model.name}/{model.version}"
    else:
        horizon = config.horizon_days
        scheme = refit_scheme(tx.table, config, cutoff=cutoff_of(months[0]), con=tx.con)
        source = f"refitted on {months[0]} values (no model given or registered)"
    frame = monitor_table(
        tx.table,
        months=months,
        scheme=scheme,
        horizon_days=horizon,
        data_end=data_end,
        model=model,
        # the model's windows (it defines its features), the config's for a model that does not record them
        windows_days=getattr(getattr(model, "scorer", None), "feature_windows", ()) or config.features.windows_days,
        satisfaction=tx.engine_satisfaction(),
        chunk_size=config.score.chunk_size,
        con=tx.con,
    )
    notes = tuple(_notes(months, horizon, data_start, data_end))
    return frame, MonitorRun(tier_scheme=source, horizon_days=int(horizon), notes=notes)


def _notes(months: Sequence[pd.Period], horizon: int, data_start: pd.Timestamp, data_end: pd.Timestamp) -> list[str]:
    notes = []
    short = [str(m) for m in months if cutoff_of(m) - pd.Timedelta(days=horizon) < data_start]
    if short:
        notes.append(f"tiers of {', '.join(short)} see less than {horizon} days of history")
    partial = [str(m) for m in months if cutoff_of(m + 1) > data_end]
    if partial:
        last_day = (data_end - pd.Timedelta(days=1)).date()
        notes.append(f"{', '.join(partial)}: the data ends on {last_day}, so the month is partial")
    open_ = [str(m) for m in months if cutoff_of(m) + pd.Timedelta(days=horizon) > data_end]
    if open_:
        notes.append(f"realized value/churn need a full {horizon}-day horizon: not yet for {', '.join(open_)}")
    return notes


def write_monitor(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write the monitor frame atomically: Parquet for .parquet/.pq, CSV for .csv."""
    suffix = Path(path).suffix.lower()
    if suffix in (".parquet", ".pq"):
        return write_parquet(frame, path)
    if suffix == ".csv":
        return write_csv(frame, path)
    raise MonitorError(f"{path}: output must end in .parquet or .csv")
