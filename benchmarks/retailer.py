"""A synthetic retailer with known truth: Pareto/NBD customers, a seasonal clock, acquisition cohorts, Gamma-Gamma
spend. Because the parameters are known, the best possible prediction for each customer is known too.

The world (a frozen pydantic :class:`World`, seeded and deterministic):

* **Cohorts**: each cohort's customers make their first purchase at a uniform time in ``[start, start + days)``.
* **Purchases** (Pareto/NBD): customer i buys at a Poisson rate λ_i ~ Gamma(r, α) per week while alive and stays
  alive for an exponential lifetime of rate μ_i ~ Gamma(s, β) per week, both counted from the first purchase.
* **Season** as a clock: a day of month ``m`` counts as ``season[m]`` days of customer time (1 for months not
  listed), so with ``{12: 2.5}`` December sees 2.5 times the purchases of an ordinary month (and its dropouts
  run 2.5 times as fast). The whole process is exactly Pareto/NBD in seasonal time, which keeps the true
  prediction in closed form.
* **Spend** (Gamma-Gamma): each purchase's amount ~ Gamma(p, ν_i) with ν_i ~ Gamma(q, v), rounded to cents.

Nothing is generated at or after ``end``. :func:`write_world` writes the transactions to Parquet and a tiercast
config next to them (``tiercast backtest --config DIR/NAME.yaml`` runs as on real data); :func:`true_predictions`
gives the true-parameter Pareto/NBD x Gamma-Gamma prediction for each customer at a cutoff from their history
(the project's closed forms in :mod:`tiercast.models.btyd.fitters` with the true parameters plugged in, times converted
to seasonal time). Customers summarize their history as the features do: purchase days, first and last purchase;
the spend posterior uses every purchase day's amount, the first one's included.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tiercast.features.contract import AMOUNT, CUSTOMER_ID, ORDER_ID, TIMESTAMP
from tiercast.models.btyd.fitters import GammaGammaModel, ParetoNBDModel
from tiercast.pipeline.writers.files import atomic_output, write_parquet

__all__ = [
    "WORLDS",
    "BacktestSetup",
    "Cohort",
    "World",
    "generate_world",
    "seasonal_clock",
    "true_predictions",
    "write_world",
]

DAY = np.timedelta64(1, "D")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Cohort(_Frozen):
    """``customers`` first purchases at uniform times in ``[start, start + days)``."""

    start: dt.date
    days: int = Field(gt=0)
    customers: int = Field(gt=0)


class BacktestSetup(_Frozen):
    """The tiercast settings written beside the data: horizon, the latest test cutoff and the cutoff step;
    ``n_tests`` test cutoffs ``step_days`` apart."""

    horizon_days: int = Field(default=91, gt=0)
    test_cutoff: dt.date
    step_days: int = Field(default=61, gt=0)
    n_tests: int = Field(default=6, gt=0)
    min_history_days: int = Field(default=60, ge=0)


class World(_Frozen):
    """A synthetic retailer; rates in weeks (λ ~ Gamma(r, α), μ ~ Gamma(s, β)), spend ~ Gamma(p, ν), ν ~ Gamma(q,
    v); ``season`` maps a month (1-12) to its clock speed; ``end`` is exclusive."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    seed: int = 0
    end: dt.date
    cohorts: tuple[Cohort, ...] = Field(min_length=1)
    r: float = Field(gt=0)
    alpha: float = Field(gt=0)
    s: float = Field(gt=0)
    beta: float = Field(gt=0)
    p: float = Field(gt=0)
    q: float = Field(gt=1)
    v: float = Field(gt=0)
    season: dict[int, float] = {}
    backtest: BacktestSetup

    @field_validator("season")
    @classmethod
    def _months(cls, v: dict[int, float]) -> dict[int, float]:
        if any(m not in range(1, 13) or not f > 0 for m, f in v.items()):
            raise ValueError("season maps months 1..12 to positive clock speeds")
        return v

    @model_validator(mode="after")
    def _inside(self) -> World:
        for c in self.cohorts:
            if c.start + dt.timedelta(days=c.days) > self.end:
                raise ValueError(f"cohort starting {c.start} runs past the end {self.end}")
        last_window_end = self.backtest.test_cutoff + dt.timedelta(days=self.backtest.horizon_days)
        if last_window_end > self.end:
            raise ValueError(f"the last test window ends {last_window_end}, after the data end {self.end}")
        return self

    @property
    def start(self) -> dt.date:
        return min(c.start for c in self.cohorts)

    @property
    def n_customers(self) -> int:
        return sum(c.customers for c in self.cohorts)

    def with_(self, **update: object) -> World:
        """A validated copy with fields replaced."""
        return World.model_validate({**self.model_dump(), **update})


# ----------------------------------------------------------------------------------------------- the clock


def seasonal_clock(world: World) -> tuple[np.ndarray, np.ndarray]:
    """(calendar days, seasonal days) at every midnight from the world's start to its end, for interpolation:
    the seasonal time of a calendar instant is ``np.interp(days, *clock)``, piecewise linear within each day."""
    days = np.arange(np.datetime64(world.start, "D"), np.datetime64(world.end, "D") + 1)
    months = days.astype("datetime64[M]").astype(int) % 12 + 1
    speed = np.array([world.season.get(int(m), 1.0) for m in range(1, 13)])[months[:-1] - 1]
    cum = np.concatenate([[0.0], np.cumsum(speed)])
    return (days - days[0]).astype(float), cum


def _to_days(world: World, ts: np.ndarray | pd.Series | pd.Timestamp) -> np.ndarray:
    """Calendar days since the world's start (float) of timestamps."""
    t = np.asarray(pd.to_datetime(ts), dtype="datetime64[us]")
    return (t - np.datetime64(world.start, "us")) / np.timedelta64(1, "D")


def _seasonal_days(world: World, ts: np.ndarray | pd.Series | pd.Timestamp) -> np.ndarray:
    cal, cum = seasonal_clock(world)
    return np.interp(_to_days(world, ts), cal, cum)


# ----------------------------------------------------------------------------------------------- generation


def generate_world(world: World) -> pd.DataFrame:
    """The world's transactions (one line per purchase), sorted by timestamp: customer_id, timestamp (naive, us),
    amount, order_id. Same world (seed included), same frame."""
    rng = np.random.default_rng(world.seed)
    cal, cum = seasonal_clock(world)
    start = np.datetime64(world.start, "us")
    first = np.concatenate(
        [
            (np.datetime64(c.start, "us") - start) / DAY + rng.uniform(0.0, c.days, size=c.customers)
            for c in world.cohorts
        ]
    )  # calendar days since the world's start
    n = first.size
    lam = rng.gamma(world.r, 1.0 / world.alpha, size=n) / 7.0  # purchases per (seasonal) day
    mu = rng.gamma(world.s, 1.0 / world.beta, size=n) / 7.0
    life = rng.exponential(1.0, size=n) / mu
    s_first = np.interp(first, cal, cum)
    active = np.clip(np.minimum(s_first + life, cum[-1]) - s_first, 0.0, None)
    n_repeat = rng.poisson(lam * active)
    owner = np.repeat(np.arange(n), n_repeat)
    s_repeat = s_first[owner] + rng.uniform(0.0, 1.0, size=owner.size) * active[owner]
    when = np.concatenate([first, np.interp(s_repeat, cum, cal)])
    who = np.concatenate([np.arange(n), owner])
    nu = rng.gamma(world.q, 1.0 / world.v, size=n)
    amount = np.maximum(np.round(rng.gamma(world.p, 1.0 / nu[who]), 2), 0.01)
    micros = np.minimum(np.floor(when * 86_400e6), (cal[-1] * 86_400e6) - 1).astype("int64")
    ts = start + micros.astype("timedelta64[us]")
    order = np.lexsort((who, ts))
    width = len(str(n))
    return pd.DataFrame(
        {
            CUSTOMER_ID: pd.Series([f"C{i:0{width}d}" for i in who[order]], dtype=object),
            TIMESTAMP: ts[order],
            AMOUNT: amount[order],
            ORDER_ID: [f"O{k:08d}" for k in range(order.size)],
        }
    )


def _config_text(world: World, data_path: Path) -> str:
    b = world.backtest
    cfg = {
        "base": "default",
        "horizon_days": b.horizon_days,
        "seed": world.seed,
        "data": {
            "transactions": {
                "path": str(data_path),
                "columns": {
                    CUSTOMER_ID: CUSTOMER_ID,
                    TIMESTAMP: TIMESTAMP,
                    AMOUNT: AMOUNT,
                    ORDER_ID: ORDER_ID,
                },
            },
            "quarantine_path": str(data_path.with_name(f"{world.name}_quarantine.parquet")),
        },
        "cutoffs": {
            "test_cutoff": str(b.test_cutoff),
            "step_days": b.step_days,
            "min_history_days": b.min_history_days,
        },
        "models": {"backtest_n_tests": b.n_tests},
        "mlflow": {"tracking_uri": f"sqlite:///{data_path.parent.resolve() / 'mlflow.db'}"},
    }
    head = f"# Synthetic retailer `{world.name}` (tiercast.benchmarks.retailer): {world.n_customers:,} customers.\n"
    return head + yaml.safe_dump(cfg, sort_keys=False)


def write_world(world: World, folder: str | Path) -> tuple[Path, Path]:
    """Write ``FOLDER/NAME.parquet`` and the tiercast config ``FOLDER/NAME.yaml`` reading it (absolute path);
    returns (data, config). Both atomically."""
    folder = Path(folder).resolve()
    data = write_parquet(generate_world(world), folder / f"{world.name}.parquet")
    config = folder / f"{world.name}.yaml"
    with atomic_output(config) as tmp:
        tmp.write_text(_config_text(world, data), encoding="utf-8")
    return data, config


# ----------------------------------------------------------------------------------------------- the truth


def _histories(tx: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Per customer with a purchase before the cutoff: first and last purchase, purchase days - 1 (as the
    features define them) and the mean spend per purchase day, the first included."""
    past = tx[tx[TIMESTAMP] < cutoff]
    day = past[TIMESTAMP].dt.floor("D")
    per_day = past.assign(day=day).groupby([CUSTOMER_ID, "day"], sort=True)[AMOUNT].sum().reset_index()
    g = per_day.groupby(CUSTOMER_ID, sort=True)
    h = pd.DataFrame({"n_days": g.size(), "day_spend": g[AMOUNT].sum(), "first_day_spend": g[AMOUNT].first()})
    ts = past.groupby(CUSTOMER_ID, sort=True)[TIMESTAMP]
    h["first"], h["last"] = ts.min(), ts.max()
    h["x"] = (h["n_days"] - 1).astype(float)
    h["mean_spend"] = h["day_spend"] / h["n_days"]
    return h


def true_predictions(world: World, tx: pd.DataFrame, *, cutoff: str | pd.Timestamp, horizon_days: int) -> pd.DataFrame:
    """The true-parameter prediction for every customer with history before ``cutoff``, for
    ``[cutoff, cutoff + horizon_days)``: ``expected_purchases``, ``p_alive``, ``p_no_purchase`` (P(no purchase in
    the horizon | history)), ``expected_spend`` (per purchase) and ``expected_value``; indexed by customer_id."""
    cutoff = pd.Timestamp(cutoff)
    h = _histories(tx, cutoff)
    week = 7.0
    s_cut, s_end = _seasonal_days(world, np.array([cutoff, cutoff + pd.Timedelta(days=horizon_days)]))
    s_first = _seasonal_days(world, h["first"].to_numpy())
    s_last = _seasonal_days(world, h["last"].to_numpy())
    T = (s_cut - s_first) / week
    tx_ = np.where(h["x"] > 0, (s_last - s_first) / week, 0.0)
    t = (s_end - s_cut) / week
    pnbd = ParetoNBDModel()
    pnbd.params_ = {"r": world.r, "alpha": world.alpha, "s": world.s, "beta": world.beta}
    gg = GammaGammaModel()
    gg.params_ = {"p": world.p, "q": world.q, "v": world.v}
    x = h["x"].to_numpy()
    purchases = pnbd.expected_purchases(t, x, tx_, T)
    # every purchase's amount, the first one's too, is a draw from the customer's Gamma(p, nu): the posterior mean
    # spend per purchase uses all of them (the Gamma-Gamma fit's convention of repeat purchases only is a choice
    # made for real data, where first orders often differ)
    spend = gg.conditional_expected_average_profit(x + 1, h["mean_spend"].to_numpy())
    return pd.DataFrame(
        {
            "expected_purchases": purchases,
            "p_alive": pnbd.prob_alive(x, tx_, T),
            "p_no_purchase": pnbd.prob_no_purchase(t, x, tx_, T),
            "expected_spend": spend,
            "expected_value": purchases * spend,
        },
        index=h.index,
    )


# ----------------------------------------------------------------------------------------------- the worlds

_PARAMS = {"r": 0.8, "alpha": 6.0, "s": 0.6, "beta": 30.0, "p": 6.0, "q": 4.0, "v": 15.0}
_SETUP = BacktestSetup(test_cutoff=dt.date(2022, 10, 1), horizon_days=91, step_days=61, n_tests=6)
_YEARLY = tuple(Cohort(start=dt.date(y, 1, 1), days=365, customers=2_000) for y in (2019, 2020, 2021, 2022))

_SMALL = World(
    name="seasonal_small",
    seed=4,
    end=dt.date(2023, 1, 1),
    cohorts=tuple(c.model_copy(update={"customers": 150}) for c in _YEARLY),
    season={11: 1.3, 12: 2.5},
    backtest=_SETUP,
    **_PARAMS,
)

#: The benchmark worlds: pure BTYD with one cohort (all acquired in 2019-Q1) or yearly cohorts, the same with a
#: December peak, and a 600-customer sample of the seasonal world. Test cutoffs 2021-12 .. 2022-10 (every 61 days),
#: the last one's 91-day window being the fourth quarter; the 600-customer world also with a 365-day horizon (test
#: cutoffs 2021-07 .. 2022-01).
WORLDS: dict[str, World] = {
    w.name: w
    for w in (
        World(
            name="btyd_one_cohort",
            seed=1,
            end=dt.date(2023, 1, 1),
            cohorts=(Cohort(start=dt.date(2019, 1, 1), days=90, customers=8_000),),
            backtest=_SETUP,
            **_PARAMS,
        ),
        World(name="btyd_cohorts", seed=2, end=dt.date(2023, 1, 1), cohorts=_YEARLY, backtest=_SETUP, **_PARAMS),
        World(
            name="seasonal",
            seed=3,
            end=dt.date(2023, 1, 1),
            cohorts=_YEARLY,
            season={11: 1.3, 12: 2.5},
            backtest=_SETUP,
            **_PARAMS,
        ),
        _SMALL,
        _SMALL.with_(
            name="seasonal_small_365",
            backtest=BacktestSetup(test_cutoff=dt.date(2022, 1, 1), horizon_days=365, step_days=61, n_tests=4),
        ),
    )
}
