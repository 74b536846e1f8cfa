"""Fuzzing the real ``tiercast`` command (a subprocess per case) with generated transaction files, configs and
arguments. Whatever comes in: exit 0 or 2, a failure is one line on stderr without a traceback, rows are
accounted for (read = accepted + quarantined), and no output is changed by a failure or left partial.

``make test`` runs a few derandomized cases per test; ``TIERCAST_FUZZ_EXAMPLES=200`` (``make fuzz``) a long,
random campaign.
"""

from __future__ import annotations

import csv
import io
import os
import re
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.pipeline.cli_harness import CliResult, cli, snapshot, temporaries

EXAMPLES = int(os.environ.get("TIERCAST_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=EXAMPLES or 3,
    derandomize=not EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check_contract(result: CliResult) -> None:
    """Exit 0 or 2; no traceback; a failure is exactly one error line."""
    assert result.code in (0, 2), f"exit {result.code} for {result.args}:\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    if result.code == 2:
        assert len(result.error_lines) == 1, result.stderr
        assert result.error_lines[0].startswith("error:"), result.stderr


# ------------------------------------------------------------------------------------------- transaction files

ids = st.one_of(
    st.integers(-5, 10**12).map(str),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n"), max_size=12),
    st.sampled_from(["", " ", "NA", "null", "0012", "12.0", "ä-01", "a,b", 'q"x']),
)
dates = st.one_of(
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2030, 1, 1)).map(lambda d: d.isoformat(sep=" ")),
    st.dates(min_value=date(2000, 1, 1)).map(lambda d: d.strftime("%d/%m/%Y")),
    st.sampled_from(["", "2010-02-30", "2010-13-01", "yesterday", "1e9", "2010-06-01T12:00:00+05:30", "0000-00-00"]),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64).map(repr),
    st.integers(-(10**15), 10**15).map(str),
    st.sampled_from(["", "1,5", "1.234,56", "$12", "-0", "1e308", "NaN", "inf", " 3 ", "--1"]),
)
row = st.tuples(ids, dates, numbers)


@st.composite
def transaction_file(draw) -> tuple[bytes, str, str | None, int]:
    """(file bytes, delimiter, delimiter named in the config or None, data rows written)."""
    rows = draw(st.lists(row, min_size=0, max_size=40))
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["customer_id", "timestamp", "amount"])
    writer.writerows(rows)
    data = buf.getvalue().encode(encoding, errors="replace")
    declared = delimiter if draw(st.booleans()) else None
    return data, delimiter, declared, len(rows)


def _count(stdout: str, label: str) -> int:
    m = re.search(rf"│ {label}\s+│\s+([\d,]+)", stdout)
    assert m, stdout
    return int(m.group(1).replace(",", ""))


@FUZZ
@given(case=transaction_file())
def test_generated_transaction_files(tmp_path_factory, case):
    data, _, declared, _ = case
    folder = tmp_path_factory.mktemp("tx")
    (folder / "tx.csv").write_bytes(data)
    source = {
        "path": "tx.csv",
        "format": "csv",
        "columns": {"customer_id": "customer_id", "timestamp": "timestamp", "amount": "amount"},
    }
    if declared:
        source["delimiter"] = declared
    cfg = {"base": "default", "data": {"transactions": source, "quarantine_path": "out/quarantine.parquet"}}
    (folder / "c.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    result = cli("validate", "--config", "c.yaml", cwd=folder)
    check_contract(result)
    assert not temporaries(folder)
    quarantine = folder / "out" / "quarantine.parquet"
    if result.code == 0:
        read, accepted, quarantined = (_count(result.stdout, k) for k in ("read", "accepted", "quarantined"))
        assert read == accepted + quarantined
        assert len(pd.read_parquet(quarantine)) == quarantined
    elif quarantine.exists():
        pd.read_parquet(quarantine)  # complete, never partial


# ---------------------------------------------------------------------------------------------------- configs

VALID = {
    "base": "default",
    "data": {
        "transactions": {
            "path": "tx.csv",
            "columns": {"customer_id": "customer_id", "timestamp": "timestamp", "amount": "amount"},
        },
        "quarantine_path": "out/quarantine.parquet",
    },
}
KEYS = [
    ("horizon_days",),
    ("seed",),
    ("features", "windows_days"),
    ("cutoffs", "step_days"),
    ("cutoffs", "n_train"),
    ("cutoffs", "test_cutoff"),
    ("tiers", "k"),
    ("tiers", "names"),
    ("tiers", "preset"),
    ("models", "n_estimators"),
    ("models", "param_grid"),
    ("score", "chunk_size"),
    ("outputs", "at_risk_top"),
    ("playbook", "churn_bands"),
    ("data", "max_quarantine_share"),
    ("data", "transactions", "delimiter"),
    ("data", "transactions", "timezone"),
    ("data", "transactions", "columns"),
    ("base",),
    ("no_such_key",),
    ("mlflow", "tracking_uri"),
]
values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**20), 10**20),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
        st.sampled_from(["default", "nope.yaml", "c.yaml", ".", "Mars/Olympus", "2010-02-30", "sqlite:///"]),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=6,
)


def _set(cfg: dict, path: tuple[str, ...], value) -> None:
    node = cfg
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value


@FUZZ
@given(edits=st.lists(st.tuples(st.sampled_from(KEYS), values), min_size=1, max_size=3), raw=st.booleans())
def test_generated_configs(tmp_path_factory, edits, raw):
    folder = tmp_path_factory.mktemp("cfg")
    (folder / "tx.csv").write_text(
        "customer_id,timestamp,amount\n" + "".join(f"c{i % 7},2010-0{1 + i % 9}-1{i % 10},{i}.5\n" for i in range(60))
    )
    cfg = yaml.safe_load(yaml.safe_dump(VALID))
    for path, value in edits:
        _set(cfg, path, value)
    text = yaml.safe_dump(cfg, allow_unicode=True)
    if raw:  # a damaged file: cut short or with bytes that are not UTF-8
        text = text[: len(text) // 2] + "\n\xff: [\n"
    (folder / "c.yaml").write_text(text, encoding="utf-8", errors="surrogateescape")
    before = snapshot(folder)
    result = cli("validate", "--config", "c.yaml", cwd=folder)
    check_contract(result)
    assert not temporaries(folder)
    if result.code == 2:
        after = snapshot(folder)
        assert {k: v for k, v in after.items() if k in before} == before


# -------------------------------------------------------------------------------------------------- arguments


def _scores(path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 40
    tiers = np.array(["platinum", "gold", "iron", "lead"])[rng.integers(0, 4, n)]
    churn = rng.uniform(0, 1, n)
    value = rng.gamma(2.0, 50.0, n)
    pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "predicted_value": value,
            "churn_probability": churn,
            "value_at_risk": value * churn,
            "current_tier": tiers,
            "predicted_tier": tiers,
            "churn_band": np.where(churn >= 0.7, "high", np.where(churn >= 0.4, "medium", "low")),
            "current_value": value,
            "model_name": "tiercast",
            "model_version": "1",
            "cutoff": pd.Timestamp("2010-06-01"),
        }
    ).to_parquet(path, index=False)


option_values = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
    st.sampled_from(["0", "-5", "1", "1e3", "0.5", "platinum", "platinum,gold", "high", "medium,high", "--top"]),
)
scores_paths = st.sampled_from(["scores.parquet", "tx.csv", "missing.parquet", "a_folder", "scores.parquet/x"])
out_paths = st.sampled_from(["list.csv", "a_folder", "tx.csv/list.csv", "new/sub/list.csv", "scores.parquet"])


@FUZZ
@given(
    scores=scores_paths,
    out=out_paths,
    options=st.dictionaries(st.sampled_from(["--top", "--min-churn", "--tiers", "--churn-bands"]), option_values),
)
def test_generated_at_risk_arguments(tmp_path_factory, scores, out, options):
    folder = tmp_path_factory.mktemp("args")
    _scores(folder / "scores.parquet")
    (folder / "tx.csv").write_text("customer_id,timestamp,amount\nc1,2010-01-01,1\n")
    (folder / "a_folder").mkdir()
    before = snapshot(folder)
    args = ["at-risk", "--scores", scores, "--out", out]
    for name, value in options.items():
        args += [name, value]
    result = cli(*args, cwd=folder)
    check_contract(result)
    assert not temporaries(folder)
    after = snapshot(folder)
    if result.code == 2:
        assert after == before
    else:
        written = pd.read_csv(folder / out)
        top = int(options.get("--top", "500"))
        assert 0 <= len(written) <= top
        assert {k: v for k, v in after.items() if k != Path(out).as_posix()} == {
            k: v for k, v in before.items() if k != Path(out).as_posix()
        }


@FUZZ
@given(cutoff=st.one_of(option_values, dates))
def test_generated_cutoffs(tmp_path_factory, cutoff):
    folder = tmp_path_factory.mktemp("cut")
    (folder / "tx.csv").write_text(
        "customer_id,timestamp,amount\n" + "".join(f"c{i % 5},2010-0{1 + i % 9}-1{i % 10},{i}.5\n" for i in range(40))
    )
    (folder / "c.yaml").write_text(yaml.safe_dump({**VALID, "cutoffs": {"min_history_days": 0}}), encoding="utf-8")
    result = cli("features", "--config", "c.yaml", "--cutoff", cutoff, "--out", "f.parquet", cwd=folder)
    check_contract(result)
    assert not temporaries(folder)
    if result.code == 2:
        assert not (folder / "f.parquet").exists()
    else:
        assert len(pd.read_parquet(folder / "f.parquet")) <= 5
