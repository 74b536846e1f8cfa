import numpy as np
import pandas as pd
import pytest


def synthetic_features(n: int, seed: int) -> pd.DataFrame:
    """Feature rows with a known relation to the labels: frequent, recent, big spenders buy more and churn less."""
    rng = np.random.default_rng(seed)
    freq = rng.poisson(3, n) + 1.0
    recency = rng.exponential(60, n)
    spend = rng.lognormal(4, 1, n) * freq
    rate = freq / (1 + recency / 30)
    future_orders = rng.poisson(rate * 0.5)
    future_value = future_orders * rng.lognormal(4, 0.5, n)
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(n)],
            "recency_days": recency,
            "frequency_orders": freq,
            "monetary_total": spend,
            "spend_90d": spend * rng.uniform(0, 0.6, n),
            "future_value": future_value,
            "churned": (future_orders == 0).astype(float),
        }
    )


FEATURES = ["recency_days", "frequency_orders", "monetary_total", "spend_90d"]


@pytest.fixture(scope="session")
def train_val_test():
    return synthetic_features(3000, 1), synthetic_features(1500, 2), synthetic_features(1500, 3)
