"""The README Results section is rendered from the result files and replaces only the text between the markers."""

import json

import pytest

from tiercast.benchmarks.readme import END, START, render, update_readme


def _backtest() -> dict:
    rows = []
    for cutoff, diff in (("2010-08-12", 0.04), ("2010-09-11", 0.05)):
        for method, gini, auc in (("naive", 0.66, 0.65), ("tiercast", 0.70 + diff, 0.70)):
            row = {"test_cutoff": cutoff, "method": method, "normalized_gini": gini, "roc_auc": auc}
            if method == "tiercast":
                row.update(gini_vs="naive", gini_diff=diff, gini_lo=0.01, gini_hi=0.09)
                row.update(auc_vs="naive", auc_diff=0.05, auc_lo=0.02, auc_hi=0.08)
            rows.append(row)
    return {"title": "Online Retail II", "config": "configs/online_retail_ii.yaml", "horizon_days": 90, "rows": rows}


def test_backtest_table_has_a_column_per_cutoff_and_the_intervals(tmp_path):
    (tmp_path / "backtest_online_retail.json").write_text(json.dumps(_backtest()))
    text = render(tmp_path)
    assert "| method | 2010-08-12 | 2010-09-11 |" in text
    assert "| tiercast | 0.740 / 0.700 | 0.750 / 0.700 |" in text
    assert "| naive | 0.660 / 0.650 | 0.660 / 0.650 |" in text
    assert "- 2010-09-11: tiercast minus naive nGini +0.050 [+0.010, +0.090]" in text


def test_update_replaces_only_between_markers(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "backtest_online_retail.json").write_text(json.dumps(_backtest()))
    readme = tmp_path / "README.md"
    readme.write_text(f"# head\n\n{START}\nold figures\n{END}\n\ntail\n", encoding="utf-8")
    update_readme(readme, results)
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# head\n\n") and text.endswith(f"{END}\n\ntail\n")
    assert "old figures" not in text and "0.750 / 0.700" in text


def test_missing_markers_are_an_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="markers"):
        update_readme(readme, tmp_path)


def test_ceiling_table_shows_the_oracle_beside_the_targets(tmp_path):
    keys = ("normalized_gini", "spearman", "roc_auc", "brier", "total_ratio_min", "total_ratio_max")
    mean = dict(zip(keys, (0.7211, 0.4569, 0.7709, 0.1581, 0.95, 0.98), strict=True))
    low = dict(zip(keys, (0.7201, 0.4561, 0.7702, 0.1579, 0.94, 0.97), strict=True))
    high = dict(zip(keys, (0.7221, 0.4579, 0.7719, 0.1585, 0.96, 0.99), strict=True))
    doc = {
        "n_folds": 5,
        "seeds": [0, 1, 2],
        "n_customers": 23570,
        "targets": {"normalized_gini_min": 0.72, "spearman_min": 0.46, "roc_auc_min": 0.775, "brier_max": 0.16,
                    "total_rel_error_max": 0.1},
        "inputs": {"tiercast": {"n_columns": 32, "mean": mean, "low": low, "high": high}},
    }  # fmt: skip
    (tmp_path / "cdnow_ceiling.json").write_text(json.dumps(doc))
    text = render(tmp_path)
    row = "| tiercast | 32 | 0.721 (0.720-0.722) | 0.457 (0.456-0.458) | 0.771 (0.770-0.772) | 0.158 (0.158-0.159) |"
    assert row + " 0.94 to 0.99 |" in text
    # the current targets, whatever a stored result holds
    assert "| target for tiercast | | >= 0.72 | - | >= 0.772 | <= 0.165 | - |" in text
    assert "23,570 customers" in text and "3 fold seed(s)" in text
