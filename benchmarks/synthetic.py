"""Seeded synthetic transactions in the canonical shape, for scale benchmarks.

Vectorised numpy (10M lines in seconds): heavy-tailed purchase rates per customer (lognormal), customers arriving
over the period with exponential active lifetimes, 1-several lines per order, lognormal amounts with a per-customer
level, about 3% return orders (all lines negative) plus about 1% single returned lines inside purchases, and
product / category / channel columns with skewed popularity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tiercast.features.contract import AMOUNT, CATEGORY, CHANNEL, CUSTOMER_ID, ORDER_ID, PRODUCT_ID, QUANTITY, TIMESTAMP

START = np.datetime64("2022-01-01T00:00:00", "s")
SPAN_DAYS = 730
N_PRODUCTS = 50_000
CHANNELS = ("web", "store", "app")


def _ids(prefix: str, codes: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded ``codes`` as an Arrow string array (built in C++, no Python string objects)."""
    digits = pc.utf8_lpad(pa.array(codes).cast(pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def generate_table(n_transactions: int, n_customers: int | None = None, seed: int = 0) -> pa.Table:
    """The transactions as an Arrow table, sorted by timestamp; see :func:`generate_transactions`."""
    if n_transactions <= 0:
        raise ValueError("n_transactions must be positive")
    n_customers = max(1, n_transactions // 10) if n_customers is None else n_customers
    if not 0 < n_customers <= n_transactions:
        raise ValueError("need 0 < n_customers <= n_transactions")
    rng = np.random.default_rng(seed)

    # Orders: 1 + Poisson(0.8) lines each, the last one truncated so lines sum to n_transactions.
    sizes = 1 + rng.poisson(0.8, size=n_transactions)
    ends = np.cumsum(sizes)
    n_orders = int(np.searchsorted(ends, n_transactions)) + 1
    sizes = sizes[:n_orders]
    sizes[-1] -= ends[n_orders - 1] - n_transactions
    n_customers = min(n_customers, n_orders)

    # Customers: one first order each, the rest by a heavy-tailed purchase rate.
    rate = rng.lognormal(0.0, 1.2, size=n_customers)
    extra = rng.choice(n_customers, size=n_orders - n_customers, p=rate / rate.sum())
    cust = np.concatenate([np.arange(n_customers), extra])
    is_first = np.arange(n_orders) < n_customers

    # Each customer is active from an arrival time for an exponential lifetime (clipped to the period).
    span = SPAN_DAYS * 86_400
    arrive = rng.uniform(0, span * 0.95, size=n_customers)
    leave = np.minimum(arrive + rng.exponential(365 * 86_400, size=n_customers), span - 1)
    offset = np.where(is_first, arrive[cust], rng.uniform(arrive[cust], leave[cust]))
    order_ts = START + offset.astype("int64").astype("timedelta64[s]")

    level = rng.lognormal(3.0, 0.5, size=n_customers)
    is_return_order = rng.random(n_orders) < 0.03
    is_return_order[is_first] = False

    # Lines.
    line_order = np.repeat(np.arange(n_orders), sizes)
    amount = np.round(level[cust[line_order]] * rng.lognormal(0.0, 0.8, size=n_transactions), 2)
    returned = is_return_order[line_order] | (rng.random(n_transactions) < 0.01)
    amount = np.where(returned, -amount, amount)
    product = (N_PRODUCTS * rng.random(n_transactions) ** 3).astype("int64")
    channel = rng.choice(len(CHANNELS), size=n_transactions, p=[0.6, 0.3, 0.1])

    order = np.argsort(order_ts[line_order], kind="stable")
    line_order = line_order[order]
    return pa.table(
        {
            CUSTOMER_ID: _ids("C", cust[line_order], 8),
            TIMESTAMP: pa.array(order_ts[line_order].astype("datetime64[us]")),
            AMOUNT: pa.array(amount[order]),
            ORDER_ID: _ids("O", line_order, 9),
            QUANTITY: pa.array((1 + rng.poisson(0.5, size=n_transactions)).astype("float64")),
            PRODUCT_ID: _ids("P", product[order], 6),
            CATEGORY: _ids("K", product[order] // 250, 3),
            CHANNEL: pa.DictionaryArray.from_arrays(pa.array(channel[order].astype("int32")), pa.array(CHANNELS)).cast(
                pa.string()
            ),
        }
    )


def generate_transactions(n_transactions: int, n_customers: int | None = None, seed: int = 0) -> pd.DataFrame:
    """``n_transactions`` lines for ``n_customers`` customers (default n/10) over two years from 2022-01-01.

    Columns: customer_id, timestamp (naive, us), amount (negative = refund), order_id, quantity, product_id,
    category, channel. Same seed, same data.
    """
    return generate_table(n_transactions, n_customers, seed).to_pandas()


def write_transactions(path: str | Path, n_transactions: int, n_customers: int | None = None, seed: int = 0) -> Path:
    """Generate and write the transactions to Parquet (zstd, 1M-row row groups); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = generate_table(n_transactions, n_customers, seed)
    tmp = path.with_suffix(path.suffix + ".tmp")
    pq.write_table(table, tmp, compression="zstd", row_group_size=1_000_000)
    tmp.replace(path)
    return path
