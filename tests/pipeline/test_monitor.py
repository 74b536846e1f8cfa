"""The monitor: hand-computed tier figures on a tiny fixture, predictions vs outcomes, and a bundled-data sample."""

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from tiercast.models.tiers.scheme import TierScheme
from tiercast.pipeline.cli.render import print_monitor
from tiercast.pipeline.config import Config, load_config
from tiercast.pipeline.jobs import monitor
from tiercast.pipeline.jobs.monitor import (
    MONITOR_COLUMNS,
    NEW_TIER,
    MonitorError,
    monitor_table,
    month_range,
    parse_month,
    run_monitor,
    write_monitor,
)
from tiercast.pipeline.jobs.score import LoadedModel

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "data" / "online_retail_ii" / "online_retail_ii.parquet"
HORIZON = 30
DATA_END = pd.Timestamp("2021-04-26")  # midnight after the last transaction (2021-04-25)

# (customer, day, order, amount); every line at 10:00.
LINES = [
    ("a", "2021-01-10", "a1", 150.0),
    ("a", "2021-02-05", "a2", 100.0),
    ("a", "2021-02-05", "a2", 20.0),  # two lines, one order
    ("a", "2021-03-10", "a3", 50.0),
    ("a", "2021-04-03", "a4", 200.0),
    ("b", "2021-01-15", "b1", 40.0),
    ("b", "2021-02-20", "b2", 60.0),
    ("b", "2021-02-20", "b3", -10.0),  # a refund order: netted in revenue, not a purchase
    ("b", "2021-04-20", "b4", 30.0),
    ("c", "2021-01-20", "c1", 200.0),
    ("c", "2021-03-15", "c2", -50.0),  # refund only in March: not retained
    ("d", "2021-02-10", "d1", 80.0),  # new in February
    ("d", "2021-03-05", "d2", 150.0),
    ("e", "2021-01-05", "e1", 10.0),  # lapsed after January
    ("f", "2021-04-25", "f1", 70.0),  # new in April
]


def _tx() -> pd.DataFrame:
    tx = pd.DataFrame(LINES, columns=["customer_id", "day", "order_id", "amount"])
    tx["timestamp"] = (pd.to_datetime(tx.pop("day")) + pd.Timedelta(hours=10)).astype("datetime64[us]")
    return tx[["customer_id", "timestamp", "amount", "order_id"]]


def _scheme() -> TierScheme:
    """A fixed 2-tier scheme: A for value >= 100, B below."""
    scheme = TierScheme(names=("A", "B"), k=2)
    scheme.k_, scheme.names_ = 2, ("A", "B")
    scheme.boundaries_ = np.array([100.0])
    scheme.shares_ = np.array([0.5, 0.5])
    return scheme


MONTHS = month_range("2021-02", "2021-04")

# Hand-computed, tier window [cutoff - 30 days, cutoff), month activity [cutoff, next month):
#  Feb (window Jan 2 - Feb 1): A = a 150, c 200; B = b 40, e 10.  Feb: a 120 (1 order), b 60 - 10 = 50 (1), d new 80.
#  Mar (window Jan 30 - Mar 1): A = a 120; B = b 50, c 0, d 80, e 0. Mar: a 50 (1), c -50 (0), d 150 (1).
#  Apr (window Mar 2 - Apr 1): A = d 150; B = a 50, b 0, c -50, e 0.   Apr: a 200 (1), b 30 (1), f new 70 (1).
EXPECTED = pd.DataFrame(
    [
        # month, tier, customers, retained, rate, orders, revenue, share, avg_ticket
        ("2021-02", "A", 2, 1, 0.5, 1, 120.0, 120 / 250, 120.0),
        ("2021-02", "B", 2, 1, 0.5, 1, 50.0, 50 / 250, 50.0),
        ("2021-02", NEW_TIER, 1, None, np.nan, 1, 80.0, 80 / 250, 80.0),
        ("2021-03", "A", 1, 1, 1.0, 1, 50.0, 50 / 150, 50.0),
        ("2021-03", "B", 4, 1, 0.25, 1, 100.0, 100 / 150, 100.0),
        ("2021-03", NEW_TIER, 0, None, np.nan, 0, 0.0, 0.0, np.nan),
        ("2021-04", "A", 1, 0, 0.0, 0, 0.0, 0.0, np.nan),
        ("2021-04", "B", 4, 2, 0.5, 2, 230.0, 230 / 300, 115.0),
        ("2021-04", NEW_TIER, 1, None, np.nan, 1, 70.0, 70 / 300, 70.0),
    ],
    columns=[
        "month",
        "tier",
        "customers",
        "retained",
        "retention_rate",
        "orders",
        "revenue",
        "revenue_share",
        "avg_ticket",
    ],
).astype({"month": "str", "tier": "str", "retained": "Int64"})

# Realized over [cutoff, cutoff + 30 days), only where that ends by 2021-04-26 (Feb and Mar cutoffs):
#  Feb: A = a 120, c 0 -> value 60, churn 1/2; B = b 50, e 0 -> 25, 1/2.
#  Mar: A = a 50 -> 50, churn 0;             B = b 0, c -50, d 150, e 0 -> 25, churn 3/4 (b, c, e).
REALIZED_VALUE = [60.0, 25.0, np.nan, 50.0, 25.0, np.nan, np.nan, np.nan, np.nan]
REALIZED_CHURN = [0.5, 0.5, np.nan, 0.0, 0.75, np.nan, np.nan, np.nan, np.nan]


@pytest.fixture(autouse=True)
def _isolated_mlflow(monkeypatch):
    """No tracking URI leaks in from earlier tests (mlflow exports it to the environment) or out to later ones."""
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    yield
    mlflow.set_tracking_uri(previous)
    mlflow.set_registry_uri(previous or "")


def test_hand_computed_month_figures():
    out = monitor_table(_tx(), months=MONTHS, scheme=_scheme(), horizon_days=HORIZON, data_end=DATA_END)
    assert list(out.columns) == list(MONITOR_COLUMNS)
    pd.testing.assert_frame_equal(out[EXPECTED.columns], EXPECTED, check_exact=False, rtol=1e-12)
    np.testing.assert_allclose(out["realized_value"], REALIZED_VALUE)
    np.testing.assert_allclose(out["realized_churn"], REALIZED_CHURN)
    assert out["predicted_value"].isna().all() and out["predicted_churn"].isna().all()
    assert out["month_complete"].tolist() == [True] * 6 + [False] * 3


class _StubScorer:
    """Predicts value = spend over the last 30 days (>= 0) and churn = 1 / (1 + purchases so far)."""

    horizon_days = HORIZON
    current_value_column = "spend_30d"
    required_columns = ("spend_30d", "frequency_orders")

    def __init__(self, scheme: TierScheme) -> None:
        self.scheme = scheme

    def check_schema(self, features: pd.DataFrame) -> None:
        assert set(self.required_columns) <= set(features.columns)

    def score(self, X: pd.DataFrame) -> pd.DataFrame:
        value = X["spend_30d"].clip(lower=0.0)
        return pd.DataFrame(
            {
                "current_tier": self.scheme.assign(X["spend_30d"].to_numpy()),
                "predicted_tier": self.scheme.assign(value.to_numpy()),
                "predicted_value": value,
                "churn_probability": 1.0 / (1.0 + X["frequency_orders"]),
                "value_at_risk": 0.0,
            },
            index=X.index,
        )


class _StubPyfunc:
    def __init__(self, scorer: _StubScorer) -> None:
        self.scorer = scorer

    def unwrap_python_model(self) -> "_StubPyfunc":
        return self

    def predict(self, X: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.scorer.score(X)


def _stub_model() -> LoadedModel:
    return LoadedModel(pyfunc=_StubPyfunc(_StubScorer(_scheme())), name="tiercast", version="7")


# Stub predictions per tier (purchases before the cutoff: Feb a1 b1 c1 e1; Mar a 2, b 2, c 1, d 1, e 1):
#  Feb: A value (150 + 200) / 2 = 175, churn 1/2;  B (40 + 10) / 2 = 25, churn 1/2.
#  Mar: A 120, churn 1/3;  B (50 + 0 + 80 + 0) / 4 = 32.5, churn (1/3 + 1/2 + 1/2 + 1/2) / 4.
#  Apr: A (d) 150, churn 1/3;  B (50 + 0 + 0 + 0) / 4 = 12.5, churn (a 1/4 + b 1/3 + c 1/2 + e 1/2) / 4.
PREDICTED_VALUE = [175.0, 25.0, np.nan, 120.0, 32.5, np.nan, 150.0, 12.5, np.nan]
PREDICTED_CHURN = [0.5, 0.5, np.nan, 1 / 3, (1 / 3 + 1.5) / 4, np.nan, 1 / 3, (1 / 4 + 1 / 3 + 1.0) / 4, np.nan]


def test_predictions_against_outcomes_per_tier():
    out = monitor_table(
        _tx(),
        months=MONTHS,
        scheme=_scheme(),
        horizon_days=HORIZON,
        data_end=DATA_END,
        model=_stub_model(),
        windows_days=(30,),
    )
    np.testing.assert_allclose(out["predicted_value"], PREDICTED_VALUE)
    np.testing.assert_allclose(out["predicted_churn"], PREDICTED_CHURN)
    np.testing.assert_allclose(out["realized_value"], REALIZED_VALUE)
    pd.testing.assert_frame_equal(out[EXPECTED.columns], EXPECTED, check_exact=False, rtol=1e-12)


def test_model_horizon_must_match():
    with pytest.raises(MonitorError, match="horizon"):
        monitor_table(_tx(), months=MONTHS, scheme=_scheme(), horizon_days=90, data_end=DATA_END, model=_stub_model())


def _csv_config(tmp_path: Path) -> Config:
    path = tmp_path / "tx.csv"
    _tx().to_csv(path, index=False)
    columns = {"customer_id": "customer_id", "timestamp": "timestamp", "amount": "amount", "order_id": "order_id"}
    return Config.model_validate(
        {
            "data": {"transactions": {"path": str(path), "columns": columns}},
            "horizon_days": HORIZON,
            "mlflow": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        }
    )


def test_run_monitor_with_a_model_writes_and_prints(tmp_path, monkeypatch):
    config = _csv_config(tmp_path)
    with pytest.raises(MonitorError, match="no MLflow store"):
        run_monitor(config, start="2021-02", end="2021-04", model_uri="models:/tiercast@champion")
    (tmp_path / "mlflow.db").touch()  # a store exists; loading is stubbed
    loaded = []
    monkeypatch.setattr(monitor, "load_model", lambda uri: loaded.append(uri) or _stub_model())
    out, run = run_monitor(config, start="2021-02", end="2021-04", model_uri="models:/tiercast@champion")
    assert loaded == ["models:/tiercast@champion"]
    assert run.tier_scheme == "models:/tiercast/7" and run.horizon_days == HORIZON and not out.attrs
    assert any(note.startswith("2021-04: the data ends on 2021-04-25") for note in run.notes)
    assert json.loads(run.to_json())["notes"] == list(run.notes)
    pd.testing.assert_frame_equal(out[EXPECTED.columns], EXPECTED, check_exact=False, rtol=1e-12)
    np.testing.assert_allclose(out["predicted_value"], PREDICTED_VALUE)

    for name in ("monitor.parquet", "monitor.csv"):
        write_monitor(out, tmp_path / name)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "monitor.parquet"), out, check_dtype=False)
    assert pd.read_csv(tmp_path / "monitor.csv")["revenue"].tolist() == out["revenue"].tolist()
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(MonitorError, match="parquet or .csv"):
        write_monitor(out, tmp_path / "monitor.xlsx")

    console = Console(record=True, width=200)
    print_monitor(console, out, run)
    text = console.export_text()
    for needle in (
        "models:/tiercast/7",
        "pred. churn",
        "2021-03",
        NEW_TIER,
        "2021-04: the data ends on 2021-04-25",
        "115",
    ):
        assert needle in text


def test_months_are_checked(tmp_path):
    assert parse_month("2010-03") == pd.Period("2010-03", freq="M")
    for bad in ("2010-3", "2010-13", "March", "2010-03-01"):
        with pytest.raises(MonitorError):
            parse_month(bad)
    with pytest.raises(MonitorError, match="before --from"):
        month_range("2021-03", "2021-02")
    config = _csv_config(tmp_path)
    with pytest.raises(MonitorError, match="no customer has a tier"):
        run_monitor(config, start="2021-01", end="2021-02")
    with pytest.raises(MonitorError, match="end of the data"):
        run_monitor(config, start="2021-02", end="2021-05")


@pytest.fixture(scope="module")
def retail_sample(tmp_path_factory) -> Path:
    """The invoice lines of 300 Online Retail II customers (every 14th id) as a Parquet file."""
    raw = pd.read_parquet(BUNDLED)
    ids = raw["Customer ID"].dropna().drop_duplicates().sort_values()
    part = raw[raw["Customer ID"].isin(ids.iloc[::14].head(300))]
    path = tmp_path_factory.mktemp("retail") / "sample.parquet"
    part.to_parquet(path, index=False)
    return path


def test_bundled_sample_refits_a_scheme_without_a_registered_model(retail_sample, tmp_path):
    store = tmp_path / "mlflow.db"
    config = load_config(
        ROOT / "configs" / "online_retail_ii.yaml",
        {"data": {"transactions": {"path": str(retail_sample)}}, "mlflow": {"tracking_uri": f"sqlite:///{store}"}},
    )
    out, run = run_monitor(config, start="2010-03", end="2010-12")
    assert not store.exists()  # looking for a champion does not create a store
    assert run.tier_scheme.startswith("refitted on 2010-03")
    assert list(out.columns) == list(MONITOR_COLUMNS)
    months = [str(m) for m in pd.period_range("2010-03", "2010-12", freq="M")]
    assert out["month"].unique().tolist() == months
    tiers = out["tier"].unique().tolist()
    assert tiers[-1] == NEW_TIER and tiers[0] == "platinum"
    assert (out.groupby("month")["tier"].apply(list) == [tiers] * len(months)).all()
    np.testing.assert_allclose(out.groupby("month")["revenue_share"].sum(), 1.0)
    rates = out[["retention_rate", "realized_churn"]].stack().dropna()
    assert rates.between(0.0, 1.0).all()
    assert (out["retained"].fillna(0) <= out["customers"]).all() and (out["orders"] >= 0).all()
    tiered = out[out["tier"] != NEW_TIER]
    assert (tiered.groupby("month")["customers"].sum().diff().dropna() >= 0).all()  # history only grows
    assert out["predicted_value"].isna().all()
    horizon_done = out["month"] <= "2010-09"  # 2010-09-01 + 90 days <= 2010-12-10
    assert tiered.loc[horizon_done, "realized_churn"].notna().all()
    assert out.loc[~horizon_done, "realized_churn"].isna().all()
    assert out["month_complete"].tolist() == [m != "2010-12" for m in out["month"]]


def test_months_read_what_their_own_builds_give_and_compile_each_query_twice(retail_sample, monkeypatch):
    """Every month's features and labels come from one query per kind, its SQL compiled for two months and moved
    to the others; the frame equals the one built month by month with build_features and build_labels."""
    from collections import OrderedDict

    from ibis.backends.sql import SQLBackend

    from tiercast.features import cutoff_queries
    from tiercast.features.build import build_features
    from tiercast.features.labels import build_labels

    monkeypatch.setattr(cutoff_queries, "_TRUSTED", OrderedDict())  # no query checked earlier in the process
    config = load_config(
        ROOT / "configs" / "online_retail_ii.yaml", {"data": {"transactions": {"path": str(retail_sample)}}}
    )
    tx = monitor.load_transactions(config)
    months = list(pd.period_range("2010-03", "2010-10", freq="M"))  # months of 30 and 31 days
    scheme = monitor.refit_scheme(tx.table, config, cutoff=monitor.cutoff_of(months[0]), con=tx.con)
    kw = {"months": months, "scheme": scheme, "horizon_days": 90, "data_end": tx.bounds[1], "con": tx.con}
    kw["windows_days"] = config.features.windows_days
    compiled = []
    compile_sql = SQLBackend.compile

    def counted(self, *args, **kwargs):  # noqa: ANN001, ANN202 - Ibis's signature
        sql = compile_sql(self, *args, **kwargs)
        compiled.append(sql.count("MAKE_TIMESTAMP") > 0)  # a query of a cutoff, not a lookup of distinct values
        return sql

    monkeypatch.setattr(SQLBackend, "compile", counted)
    out = monitor_table(tx.table, **kw)
    # features, the 90-day outcome and the activity of 30- and of 31-day months: two months each
    assert sum(compiled) == 4 * 2

    class MonthByMonth:
        def __init__(self, t, con, *, horizon_days, windows_days, satisfaction):  # noqa: ANN001
            self.t, self.con, self.h, self.w = t, con, horizon_days, tuple(windows_days)

        def features(self, cutoff):  # noqa: ANN001, ANN202
            return build_features(self.t, cutoff=cutoff, windows_days=self.w, horizon_days=self.h, con=self.con)

        def labels(self, cutoff, horizon_days):  # noqa: ANN001, ANN202
            return build_labels(self.t, cutoff=cutoff, horizon_days=horizon_days, con=self.con)

    monkeypatch.setattr(monitor, "MonthQueries", MonthByMonth)
    compiled.clear()
    pd.testing.assert_frame_equal(out, monitor_table(tx.table, **kw))
    assert sum(compiled) == len(months) * 2 + 7  # features and activity every month, the outcome of 7 of them
