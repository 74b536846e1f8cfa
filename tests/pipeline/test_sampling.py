"""The per-cutoff cap on training rows: drawn in the engine, stratified on value, seeded, and a no-op under the cap."""

import json

import ibis
import ibis.expr.operations as ops
import numpy as np
import pandas as pd
import pytest

from tiercast.benchmarks.synthetic import generate_transactions
from tiercast.features.build import as_table
from tiercast.features.training_set import LeakageError
from tiercast.pipeline.engine.rows import CutoffRows, build_training_set_on, features_on
from tiercast.pipeline.engine.sampling import ROWS_BEFORE, CutoffSample, Sampling, sample_cutoff_rows
from tiercast.pipeline.engine.session import engine_resident


@pytest.fixture(scope="module")
def tx() -> pd.DataFrame:
    return generate_transactions(30_000, 3_000, seed=1)


CUTOFF = pd.Timestamp("2023-06-01")


def test_under_the_cap_every_row_is_kept_unchanged(tx):
    con = ibis.duckdb.connect()
    full, uncapped = features_on(con, tx, cutoff=CUTOFF)
    capped, sampling = features_on(con, tx, cutoff=CUTOFF, max_rows=len(full))
    pd.testing.assert_frame_equal(capped, full)
    assert sampling == Sampling((CutoffSample(CUTOFF, len(full), len(full)),))
    assert uncapped == Sampling()
    assert not capped.attrs and not full.attrs  # the counts travel beside the frame, not in it


def test_cap_keeps_the_value_mix_and_is_seeded(tx):
    con = ibis.duckdb.connect()
    full, _ = features_on(con, tx, cutoff=CUTOFF)
    a, sampling = features_on(con, tx, cutoff=CUTOFF, max_rows=500, seed=7)
    again, _ = features_on(con, tx, cutoff=CUTOFF, max_rows=500, seed=7)
    other, _ = features_on(con, tx, cutoff=CUTOFF, max_rows=500, seed=8)
    assert 495 <= len(a) <= 500 and sampling == Sampling((CutoffSample(CUTOFF, len(full), len(a)),))
    pd.testing.assert_frame_equal(a, again)
    assert set(a["customer_id"]) != set(other["customer_id"])
    assert set(a["customer_id"]) <= set(full["customer_id"])
    assert ROWS_BEFORE not in a.columns
    # stratified: the share without spend in the horizon window and each positive-spend quartile keep their size
    spend = full["spend_90d"].to_numpy()
    edges = np.quantile(spend[spend > 0], [0.25, 0.5, 0.75])
    share = lambda s: np.bincount(np.where(s > 0, 1 + np.searchsorted(edges, s), 0), minlength=5) / len(s)  # noqa: E731
    np.testing.assert_allclose(share(a["spend_90d"].to_numpy()), share(spend), atol=0.01)
    # the same customers' rows, unchanged
    rows = full.set_index("customer_id").loc[a["customer_id"]].reset_index()
    pd.testing.assert_frame_equal(a, rows, check_like=False)


def test_training_set_is_capped_per_cutoff_with_counts(tx, tmp_path):
    con = ibis.duckdb.connect()
    cutoffs = [pd.Timestamp("2023-03-01"), CUTOFF]
    kw = {"cutoffs": cutoffs, "horizon_days": 90, "data_end": "2024-01-01"}
    full, uncapped = build_training_set_on(con, tx, **kw)
    capped, sampling = build_training_set_on(con, tx, max_rows_per_cutoff=400, seed=3, **kw)
    assert uncapped == Sampling() and not capped.attrs
    sizes = full.groupby("cutoff").size()
    counts = sampling.records()
    assert [c["cutoff"] for c in counts] == [c.isoformat() for c in cutoffs]
    assert [c.cutoff for c in sampling.cutoffs] == cutoffs
    assert [c["rows_before"] for c in counts] == sizes.tolist()
    assert [c["rows_after"] for c in counts] == capped.groupby("cutoff").size().tolist()
    assert all(396 <= c["rows_after"] <= 400 for c in counts)
    assert json.loads(sampling.to_json()) == counts
    capped.to_parquet(tmp_path / "capped.parquet")
    assert list(capped.columns) == list(full.columns)
    # labels travel with the sampled rows
    merged = capped.merge(full, on=["cutoff", "customer_id"], suffixes=("", "_full"))
    assert len(merged) == len(capped)
    assert (merged["future_value"] == merged["future_value_full"]).all()
    untouched, counted = build_training_set_on(con, tx, max_rows_per_cutoff=10**6, **kw)
    pd.testing.assert_frame_equal(untouched, full)
    assert [(c.rows_before, c.rows_after) for c in counted.cutoffs] == [(n, n) for n in sizes.tolist()]


def test_cap_must_be_positive(tx):
    t = ibis.memtable(pd.DataFrame({"customer_id": ["a"], "spend_90d": [1.0]}))
    with pytest.raises(ValueError, match="positive"):
        sample_cutoff_rows(t, 0, value_column="spend_90d", cutoff=CUTOFF)


def test_sets_sharing_cutoffs_equal_their_own_builds(tx):
    con = ibis.duckdb.connect()
    t = engine_resident(con, as_table(ibis.memtable(tx)))
    assert not t.op().find(ops.InMemoryTable)
    assert engine_resident(con, t) is t
    (stored,) = {op.name for op in t.op().find(ops.DatabaseTable)}
    con.con.execute(f"CREATE VIEW tx_view AS SELECT * FROM {stored}")
    viewed = engine_resident(con, con.table("tx_view"))
    assert "tx_view" not in {op.name for op in viewed.op().find(ops.DatabaseTable)}
    assert viewed.count().execute() == len(tx)
    assert engine_resident(con, viewed) is viewed
    rows = CutoffRows(con, t, horizon_days=90, max_rows_per_cutoff=300, seed=2)
    a, b = [pd.Timestamp("2023-01-01"), pd.Timestamp("2023-03-01")], [pd.Timestamp("2023-03-01"), CUTOFF]
    first = rows.training_set(cutoffs=a, data_end="2023-06-01", holdout_start="2023-06-01")
    second = rows.training_set(cutoffs=b, data_end="2024-01-01")
    for (got, got_sampling), cutoffs in ((first, a), (second, b)):
        own, own_sampling = build_training_set_on(con, tx, cutoffs=cutoffs, horizon_days=90, data_end="2024-01-01",
                                                  max_rows_per_cutoff=300, seed=2)  # fmt: skip
        pd.testing.assert_frame_equal(got, own)
        assert got_sampling == own_sampling and [c.cutoff for c in got_sampling.cutoffs] == cutoffs
    with pytest.raises(LeakageError):  # each set still checks its own label windows
        rows.training_set(cutoffs=b, data_end="2023-06-01")
