"""The layout stays readable: imports point one way (pipeline -> models -> features), and modules and functions
stay short unless a marker comment says why not.

Import direction: ``features`` imports only itself; ``models`` imports ``features``; ``pipeline`` imports both;
``benchmarks`` may import anything, and only ``benchmarks`` and the command line (``pipeline.cli``) import it.

Sizes: a module under :data:`MAX_MODULE_LINES` lines, a function under :data:`MAX_FUNCTION_LINES`
(decorators and docstring included). A longer one carries ``# size: <reason>`` — on one of a module's first ten
lines after its docstring, or on the line of a function's ``def`` (or of its first decorator) or in the comment
block right above it.

Column names: every column name of the data contract is written once, in ``features/contract.py``; product modules
use its constants. A string literal equal to a column name elsewhere fails, unless :data:`NAME_ALLOWLIST` lists it
with a reason (docstrings and the fixed text of f-strings are not literals here).

Results: no product module reads or writes ``DataFrame.attrs``; results travel as typed values beside frames.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("features", "models", "pipeline", "benchmarks")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MARKER = "# size:"

#: What each package may import of tiercast.
ALLOWED = {
    "features": {"features"},
    "models": {"features", "models"},
    "pipeline": {"features", "models", "pipeline"},
    "benchmarks": set(PACKAGES),
}


CONTRACT = ROOT / "features" / "contract.py"
#: (module, literal) -> (how many times, why it is not the column): strings that equal a column name but name
#: something else.
NAME_ALLOWLIST = {
    ("pipeline/cli/summary.py", "tier"): (2, "the header of the printed tier table, a label"),
    ("pipeline/cli/render.py", "tier"): (1, "the header of the printed monitor table, a label"),
}


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _imports(tree: ast.AST) -> set[str]:
    """Every tiercast module imported anywhere in the module (top level, functions, TYPE_CHECKING blocks)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m.removeprefix("tiercast.") for m in found if m == "tiercast" or m.startswith("tiercast.")}


def _marked(lines: list[str], *numbers: int) -> bool:
    return any(0 < n <= len(lines) and MARKER in lines[n - 1] for n in numbers)


def _comment_above(lines: list[str], start: int) -> list[int]:
    """The line numbers of the comment block directly above line ``start``."""
    above, n = [], start - 1
    while n > 0 and lines[n - 1].lstrip().startswith("#"):
        above.append(n)
        n -= 1
    return above


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_imports_point_one_way(path):
    module = _name(path)
    package = module.split(".")[0]
    allowed = ALLOWED[package] | ({"benchmarks"} if module.startswith("pipeline.cli") else set())
    wrong = sorted(m for m in _imports(ast.parse(path.read_text(encoding="utf-8"))) if m.split(".")[0] not in allowed)
    assert not wrong, f"{module} imports {wrong}; {package} may import only {sorted(allowed)}"


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_modules_and_functions_are_short_or_say_why(path):
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    tree = ast.parse(text)
    doc_end = tree.body[0].end_lineno if tree.body and isinstance(tree.body[0], ast.Expr) else 0
    long = []
    if len(lines) >= MAX_MODULE_LINES and not _marked(lines, *range(doc_end + 1, doc_end + 11)):
        long.append(f"module: {len(lines)} lines")
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            size = node.end_lineno - start + 1
            if size >= MAX_FUNCTION_LINES and not _marked(lines, start, node.lineno, *_comment_above(lines, start)):
                long.append(f"{node.name} (line {node.lineno}): {size} lines")
    assert not long, f"{_name(path)}: over the limits without a '{MARKER} <reason>' comment: {long}"


def test_every_package_folder_is_installed():
    """pyproject lists the packages one by one: a folder missing there is missing from the wheel."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    found = {"tiercast." + _name(p.parent) for pkg in PACKAGES for p in (ROOT / pkg).rglob("__init__.py")}
    assert found == listed, f"not listed: {sorted(found - listed)}; listed without a folder: {sorted(listed - found)}"


def test_the_checks_see_every_package():
    names = {_name(p).split(".")[0] for p in _modules()}
    assert names == set(PACKAGES) and len(_modules()) > 60


def _contract_names() -> tuple[list[str], set[str]]:
    """The column-name literals written in the contract, and every column name it defines (lists included)."""
    from tiercast.features import contract

    literals = _string_literals(ast.parse(CONTRACT.read_text(encoding="utf-8")))
    names = set()
    for key, value in vars(contract).items():
        if key.isupper() and isinstance(value, str):
            names.add(value)
        elif key.isupper() and isinstance(value, tuple):
            names.update(value)
    return literals, names


def _string_literals(tree: ast.AST) -> list[str]:
    """Every string constant of a module except docstrings and the fixed text of f-strings (the expressions in an
    f-string's braces are code: their literals count)."""
    skip = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))
        if isinstance(node, ast.JoinedStr):
            skip.update(id(part) for part in node.values if isinstance(part, ast.Constant))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
    ]


def test_the_contract_writes_each_column_name_once():
    literals, names = _contract_names()
    written = [v for v in literals if v in names]
    assert sorted(written) == sorted(names), f"written more than once or not as a constant: {sorted(written)}"
    assert {"customer_id", "cutoff", "churned", "future_value", "churn_probability", "tier"} <= names


@pytest.mark.parametrize("path", [p for p in _modules() if p != CONTRACT], ids=_name)
def test_column_names_come_from_the_contract(path):
    _, names = _contract_names()
    rel = path.relative_to(ROOT).as_posix()
    found: dict[str, int] = {}
    for value in _string_literals(ast.parse(path.read_text(encoding="utf-8"))):
        if value in names:
            found[value] = found.get(value, 0) + 1
    wrong = {v: n for v, n in found.items() if NAME_ALLOWLIST.get((rel, v), (0, ""))[0] != n}
    allowed = {v: NAME_ALLOWLIST[(r, v)][0] for r, v in NAME_ALLOWLIST if r == rel}
    assert not wrong and allowed.keys() <= found.keys(), (
        f"{rel} writes column names as strings {wrong} (allowlisted: {allowed}); "
        "use the constants of tiercast.features.contract"
    )


def test_the_literal_scan_reads_code_not_prose():
    source = 'def f(x, y):\n    """cutoff"""\n    return f"{x[\'cutoff\']}" + f"cutoff{y}" + "tier"\n'
    assert sorted(_string_literals(ast.parse(source))) == ["cutoff", "tier"]


def test_the_allowlist_names_existing_modules_and_says_why():
    for (rel, value), (count, reason) in NAME_ALLOWLIST.items():
        assert (ROOT / rel).is_file() and count > 0 and len(reason) > 10, (rel, value)


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_results_do_not_travel_in_frame_attrs(path):
    """A job's counts, sources and notes are typed results returned beside its frame, not ``DataFrame.attrs``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    used = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "attrs"]
    assert not used, f"{_name(path)} reads or writes .attrs on lines {used}"


def test_the_long_test_units_named_for_scheduling_exist():
    """tests/conftest.py hands out the units it names as long first; a renamed module would silently lose that."""
    from tests.conftest import LONG_UNITS

    assert [u for u in LONG_UNITS if not (ROOT / u).is_file()] == []
