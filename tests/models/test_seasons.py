import numpy as np
import pandas as pd
import pytest

from tiercast.benchmarks.retailer import WORLDS, generate_world, seasonal_clock
from tiercast.features.build import build_features
from tiercast.models.btyd.seasons import season_indices


def test_season_index_is_last_years_window_against_the_years_average():
    X = pd.DataFrame(
        {
            "tenure_days": [400.0, 500.0, 380.0, 100.0],  # the last customer is not a year old: left out
            "orders_365d": [4.0, 8.0, 0.0, 50.0],
            "orders_275d": [2.0, 6.0, 0.0, 50.0],
        }
    )
    # last year's next 90 days: (4 + 8) - (2 + 6) = 4 orders against 12 * 90 / 365 in an average 90 days
    assert season_indices(X) == pytest.approx({90: 4 / (12 * 90 / 365)})
    assert season_indices(X.assign(tenure_days=200.0)) == {}  # no year of history: no index
    assert season_indices(X.drop(columns="orders_275d")) == {}


def test_alive_season_index_is_hand_computed():
    X = pd.DataFrame(
        {
            "tenure_days": [400.0, 500.0, 380.0, 100.0, 420.0],
            "orders_365d": [4.0, 8.0, 3.0, 50.0, 6.0],
            "orders_275d": [2.0, 6.0, 3.0, 50.0, 1.0],
            "orders_90d": [1.0, 2.0, 0.0, 50.0, 0.0],
        }
    )
    # qualifying: a year old and a purchase in the last 90 days -> rows 0 and 1 (row 3 is not a year old; rows 2
    # and 4 bought nothing lately: row 4, all of whose purchases fall early in the year, is the dropout the index
    # must not read as a season). Last year's next 90 days: (4 - 2) + (8 - 6) = 4 orders; the reference
    # [cutoff - 365, cutoff - 90): (4 - 1) + (8 - 2) = 9 orders over 275 days, 9 * 90 / 275 in 90 days. No index
    # for h = 365 - 90 = 275 (orders_90d read as last year's window): from half a year on, the conditioning window
    # [cutoff - 275, cutoff) would overlap last year's window [cutoff - 365, cutoff - 90)
    assert season_indices(X, "alive") == pytest.approx({90: 4 / (9 * 90 / 275)})
    assert season_indices(X, "alive") != season_indices(X, "all")
    assert season_indices(X.assign(tenure_days=200.0), "alive") == {}  # no year of history: no index
    assert season_indices(X.drop(columns="orders_275d"), "alive") == {}  # no window a year back
    assert season_indices(X.drop(columns="orders_90d"), "alive") == {}  # no window to tell who is alive
    assert season_indices(X.assign(orders_90d=0.0), "alive") == {}  # nobody certainly alive
    with pytest.raises(ValueError, match="season index method"):
        season_indices(X, "peak")


def _season_rows(name: str, cutoff: str) -> pd.DataFrame:
    return build_features(_world_tx(name), cutoff=pd.Timestamp(cutoff), windows_days=(365,), horizon_days=91)


_WORLD_TX: dict[str, pd.DataFrame] = {}


def _world_tx(name: str) -> pd.DataFrame:
    if name not in _WORLD_TX:
        _WORLD_TX[name] = generate_world(WORLDS[name])
    return _WORLD_TX[name]


def _alive_counts(X: pd.DataFrame, h: int = 91) -> tuple[float, float]:
    """(orders in last year's window, orders in the reference window) of the customers the index counts."""
    alive = (X["tenure_days"] >= 365) & (X[f"orders_{h}d"] > 0)
    window = (X["orders_365d"] - X[f"orders_{365 - h}d"])[alive].sum()
    return float(window), float((X["orders_365d"] - X[f"orders_{h}d"])[alive].sum())


def _index_se(X: pd.DataFrame, h: int = 91) -> float:
    """Standard error of the index: given each qualifying customer's reference count, the orders falling in last
    year's window (a part of the reference) are binomial with the window's share p of the reference, so W / R has
    variance p (1 - p) / R, and the index is W / R * (365 - h) / h."""
    w, r = _alive_counts(X, h)
    p = w / r
    return float(np.sqrt(p * (1 - p) / r) * (365 - h) / h)


@pytest.mark.parametrize("name", ["btyd_one_cohort", "btyd_cohorts"])
def test_alive_season_index_is_one_without_a_season(name):
    """On the synthetic worlds with no season (Pareto/NBD customers, one cohort or yearly cohorts) the index is 1
    within sampling noise, where counting every year-old customer reads the dropouts as a peak."""
    X = _season_rows(name, "2022-10-01")
    se = _index_se(X)
    assert se < 0.03  # about 1,500 qualifying customers, 10,000 reference orders: a tight test
    index = season_indices(X, "alive")[91]
    assert abs(index - 1.0) < 4 * se
    assert season_indices(X, "all")[91] > 1.0 + 4 * se  # the old count: dropouts buy early in the year


def _true_index(name: str, cutoff: str, h: int = 91) -> float:
    """The seasonal world's purchase rate over last year's window against the rate over [cutoff - 365, cutoff - h)
    (the world's clock: a day of month m counts as season[m] days of customer time)."""
    world = WORLDS[name]
    cal, cum = seasonal_clock(world)
    c = pd.Timestamp(cutoff)
    clock = lambda t: np.interp((t - pd.Timestamp(world.start)).days, cal, cum)  # noqa: E731
    a, b, e = c - pd.Timedelta(days=365), c - pd.Timedelta(days=365 - h), c - pd.Timedelta(days=h)
    return float(((clock(b) - clock(a)) / h) / ((clock(e) - clock(a)) / (365 - h)))


@pytest.mark.parametrize("cutoff", ["2022-10-01", "2022-06-01"])
def test_alive_season_index_reads_the_true_season(cutoff):
    """With a December peak (November 1.3, December 2.5 times the ordinary rate) the index is the true ratio of
    rates: about 1.3 for the fourth quarter, 0.83 for the summer (the reference year holds the peak)."""
    X = _season_rows("seasonal", cutoff)
    truth, se = _true_index("seasonal", cutoff), _index_se(X)
    assert se < 0.04 and abs(truth - 1.0) > 8 * se  # a season the sample can tell from none
    assert season_indices(X, "alive")[91] == pytest.approx(truth, abs=4 * se)
