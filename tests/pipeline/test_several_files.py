"""A folder or glob pattern of files as one source (monthly exports, a folder of Parquet parts): read row for row as
the files joined end to end, a line repeated in two files quarantined as a duplicate, every quarantined row named by
its file and its data row there; files that disagree (columns, formats) and a pattern matching nothing fail in one
line naming the file, writing nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from tests.pipeline.cli_harness import assert_clean_failure, invoke, snapshot
from tests.pipeline.test_ingest_sql import RETAIL_COLUMNS, TX, config
from tiercast.pipeline.ingest.common import InputError
from tiercast.pipeline.ingest.fingerprint import source_sha256
from tiercast.pipeline.ingest.loader import load_transactions
from tiercast.pipeline.ingest.paths import source_files
from tiercast.pipeline.ingest.sources import TransactionSource
from tiercast.pipeline.starter import sniff

HEADER = "customer,ts,amount,order\n"
MAPPING = {"customer_id": "customer", "timestamp": "ts", "amount": "amount", "order_id": "order"}
MONTHS = {
    "2024-01.csv": "c1,2024-01-03,10.0,o1\nc2,2024-01-09,abc,o2\nc1,2024-01-20,5.0,o3\n",
    "2024-02.csv": "c2,2024-02-02,7.5,o4\nc1,2024-01-20,5.0,o3\n,2024-02-11,3.0,o5\n",  # o3 again: an overlap
    "2024-03.csv": "c3,2024-03-01,4.0,o6\n",
}


def write_months(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in MONTHS.items():
        (folder / name).write_text(HEADER + lines, encoding="utf-8")
    return folder


def load(tmp_path: Path, path: Path | str, **source) -> tuple:
    cfg = config(tmp_path, {"path": str(path), "columns": MAPPING, **source})
    data = load_transactions(cfg, run_date="2030-01-01")
    return data, pd.read_parquet(cfg.data.quarantine_path)


def test_folder_lists_data_files_in_order_leaving_out_hidden_and_underscore_names(tmp_path: Path) -> None:
    folder = write_months(tmp_path / "exports")
    for junk in ("_SUCCESS", ".DS_Store", "notes.md", ".part-9.csv.crc"):
        (folder / junk).write_text("x")
    (folder / "_temporary").mkdir()
    (folder / "_temporary" / "2024-04.csv").write_text(HEADER)
    (folder / "2023").mkdir()
    (folder / "2023" / "12.csv").write_text(HEADER)
    names = [p.relative_to(folder).as_posix() for p in source_files(folder)]
    assert names == ["2023/12.csv", "2024-01.csv", "2024-02.csv", "2024-03.csv"]
    pattern = [p.name for p in source_files(folder / "2024-0[12].csv")]
    assert pattern == ["2024-01.csv", "2024-02.csv"]
    assert [p.name for p in source_files(folder / "**" / "*.csv")] == ["12.csv", *MONTHS]
    assert source_files(folder / "nothing-*.csv") == []


def test_several_files_read_as_the_files_end_to_end(tmp_path: Path) -> None:
    folder = write_months(tmp_path / "exports")
    joined = tmp_path / "joined.csv"
    joined.write_text(HEADER + "".join(MONTHS.values()), encoding="utf-8")
    (tmp_path / "one").mkdir(), (tmp_path / "many").mkdir()
    one, one_q = load(tmp_path / "one", joined)
    many, many_q = load(tmp_path / "many", folder)
    assert many.n_read == one.n_read == 7
    assert dict(many.reasons) == dict(one.reasons) == {"non_numeric_amount": 1, "duplicate": 1, "missing_customer": 1}
    pd.testing.assert_frame_equal(many.accepted, one.accepted)
    # the quarantine: the joined file's rows, each named by its file and its data row there (hand-counted)
    assert many_q.columns.tolist() == [*one_q.columns[:-2], "source_file", "source_row", "reason"]
    names = many_q["source_file"].map(lambda f: Path(f).name)
    where = list(zip(names, many_q["source_row"], many_q["reason"], strict=True))
    assert where == [
        ("2024-01.csv", 1, "non_numeric_amount"),
        ("2024-02.csv", 1, "duplicate"),  # o3 of January, exported again in February
        ("2024-02.csv", 2, "missing_customer"),
    ]
    assert one_q["source_row"].tolist() == [1, 4, 5]
    same = [c for c in one_q.columns if c != "source_row"]  # the lines as read, and their reasons
    pd.testing.assert_frame_equal(many_q[same], one_q[same])


def test_a_parquet_folder_numbers_rows_per_file(tmp_path: Path) -> None:
    lines = pd.read_csv(TX / "reasons.csv", dtype=str, keep_default_na=False)
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, part in enumerate((lines.iloc[:5], lines.iloc[5:6], lines.iloc[6:])):
        part.to_parquet(folder / f"part-{i}.parquet", index=False)
    lines.iloc[:0].to_parquet(folder / "part-1a.parquet", index=False)  # no rows: starts where part-2 does
    (folder / "_SUCCESS").write_text("")
    lines.to_parquet(tmp_path / "all.parquet", index=False)
    source = {"columns": RETAIL_COLUMNS, "non_product_codes": ["POST"], "timezone": "Europe/London"}
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    whole = load_transactions(
        config(tmp_path / "a", {**source, "path": str(tmp_path / "all.parquet")}), run_date="2030"
    )
    parts = load_transactions(config(tmp_path / "b", {**source, "path": str(folder)}), run_date="2030")
    assert parts.n_read == whole.n_read == len(lines) and dict(parts.reasons) == dict(whole.reasons)
    pd.testing.assert_frame_equal(parts.accepted, whole.accepted)
    q_whole, q_parts = (pd.read_parquet(tmp_path / d / "quarantine.parquet") for d in "ab")
    starts = {"part-0.parquet": 0, "part-1.parquet": 5, "part-2.parquet": 6}
    rebuilt = q_parts["source_file"].map(lambda f: starts[Path(f).name]) + q_parts["source_row"]
    assert rebuilt.tolist() == q_whole["source_row"].tolist() and len(q_whole) > 3
    assert (
        q_parts["source_row"] < q_parts["source_file"].map(lambda f: {0: 5, 5: 1, 6: 8}[starts[Path(f).name]])
    ).all()


def test_init_reads_the_first_file_and_keeps_the_folder(tmp_path: Path) -> None:
    folder = write_months(tmp_path / "exports")
    found = sniff(folder)
    assert found.transactions["path"] == str(folder.resolve())
    assert found.transactions["columns"] == {"customer_id": "customer", "timestamp": "ts", "amount": "amount",
                                             "order_id": "order"}  # fmt: skip
    assert sniff(folder / "2024-0*.csv").transactions["path"] == str((folder / "2024-0*.csv").resolve())


def test_a_folder_or_pattern_without_data_files_fails_naming_it(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("no data here\n")
    with pytest.raises(ValidationError, match="no data files"):  # no suffix to tell the format by
        TransactionSource.model_validate({"path": str(tmp_path), "columns": MAPPING})
    with pytest.raises(InputError, match=r"nothing-\*\.csv: no data files"):  # told by the pattern, found at reading
        load(tmp_path, tmp_path / "nothing-*.csv")
    assert not (tmp_path / "quarantine.parquet").exists()


@pytest.mark.parametrize(
    ("files", "needles"),
    [
        ({"1.csv": HEADER + "c1,2024-01-01,5,o1\n", "2.csv": "customer,ts,amount,order,store\nc1,2024-01-02,5,o2,9\n"},
         ["2.csv: its columns differ from", "has ['store'] too"]),
        ({"1.csv": HEADER + "c1,2024-01-01,5,o1\n", "2.csv": HEADER + "c2,2024-01-02,5,o2\nc3,2024-01-03,4,o3,9\n"},
         ["2.csv: cannot parse as delimited text in line 3", "expected 4 fields, saw 5"]),
        ({"1.csv": HEADER + "c1,2024-01-01,5,o1\n", "2.parquet": None}, ["holds files of two formats"]),
    ],
    ids=["columns", "ragged-second-file", "two-formats"],
)  # fmt: skip
def test_files_that_disagree_fail_in_one_line_writing_nothing(tmp_path: Path, files: dict, needles: list[str]):
    folder = tmp_path / "exports"
    folder.mkdir()
    for name, text in files.items():
        if text is None:
            pd.DataFrame({"customer": ["c9"], "ts": ["2024-01-05"], "amount": ["1"], "order": ["o9"]}).to_parquet(
                folder / name
            )
        else:
            (folder / name).write_text(text, encoding="utf-8")
    columns = "".join(f"      {k}: {v}\n" for k, v in MAPPING.items())
    (tmp_path / "c.yaml").write_text(
        f"base: default\ndata:\n  transactions:\n    path: {folder}\n    columns:\n{columns}"
        f"  quarantine_path: {tmp_path / 'out' / 'q.parquet'}\n"
    )
    before = snapshot(tmp_path)
    assert_clean_failure(invoke("validate", "--config", str(tmp_path / "c.yaml"), cwd=tmp_path), *needles)
    assert snapshot(tmp_path) == before


def test_validate_on_a_pattern_and_the_fingerprint_of_its_files(tmp_path: Path) -> None:
    folder = write_months(tmp_path / "exports")
    pattern = folder / "2024-*.csv"
    digest = source_sha256(pattern)
    assert digest == source_sha256(folder) != source_sha256(folder / "2024-01.csv")
    result = invoke("init", "--data", str(pattern), "--out", str(tmp_path / "c.yaml"), cwd=tmp_path)
    assert result.code == 0, result.stderr
    result = invoke("validate", "--config", str(tmp_path / "c.yaml"), cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert f"input: {pattern} (3 files)" in result.stdout
    quarantine = pd.read_parquet(tmp_path / "outputs" / "quarantine.parquet")
    assert quarantine["source_file"].map(lambda f: Path(f).name).tolist() == [
        "2024-01.csv",
        "2024-02.csv",
        "2024-02.csv",
    ]
    (folder / "2024-03.csv").write_text(HEADER + MONTHS["2024-03.csv"] + "c4,2024-03-02,1.0,o7\n", encoding="utf-8")
    assert source_sha256(pattern) != digest  # a changed file changes the fingerprint


def test_a_pattern_the_shell_expanded_gets_how_to_quote_it(tmp_path: Path) -> None:
    folder = write_months(tmp_path / "exports")
    expanded = [str(p) for p in sorted(folder.glob("*.csv"))]  # what `--data exports/*.csv` unquoted passes
    out = tmp_path / "c.yaml"
    result = invoke("init", "--data", *expanded, "--out", str(out), cwd=tmp_path)
    assert_clean_failure(result, "unexpected extra argument", "quote it (--data 'exports/*.csv') or give the folder")
    assert not out.exists()
    other = invoke("init", "--data", expanded[0], "not-a-file", "--out", str(out), cwd=tmp_path)
    line = assert_clean_failure(other, "unexpected extra argument")
    assert "quote it" not in line
