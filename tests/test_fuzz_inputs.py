"""Fuzzing the case folder: any mutation of the tiny case's tables and ``case.yaml`` either
loads and solves or raises a :class:`~mosaik_bilevel.errors.MosaikBilevelError`, never any
other exception and never a hang.

The examples are derandomised (the same ones every run, no example database). Set
``MOSAIK_BILEVEL_FUZZ_EXAMPLES`` to explore afresh with that many random examples.
"""

import csv
import io
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mosaik_bilevel.api import solve
from mosaik_bilevel.cases import load_case
from mosaik_bilevel.cases.tiny import FOLDER
from mosaik_bilevel.errors import MosaikBilevelError

EXPLORE = int(os.environ.get("MOSAIK_BILEVEL_FUZZ_EXAMPLES", "0"))
SETTINGS = settings(max_examples=EXPLORE or 60, deadline=None, derandomize=not EXPLORE,
                    database=None, suppress_health_check=[HealthCheck.too_slow])

CSV_FILES = sorted(str(p.relative_to(FOLDER)) for p in FOLDER.rglob("*.csv"))
CELLS = ["nan", "NaN", "inf", "-inf", "-1", "0", "-0", "2.5", "1e308", "1e400", "-1e400",
         "1e-320", "9" * 400, "abc", "", "True", "false", " ", "2016-05-24 18:00", "1,5",
         "0x10", "∞", "\x00", "'", '"',
         # plausible values, so that some mutated cases load and reach the solver
         "0.001", "0.01", "0.05", "0.5", "1", "3", "100"]
YAML_VALUES = [None, True, False, -1, 0, 1, 2.7, -2.5, 1e308, float("nan"), float("inf"),
               float("-inf"), "abc", "", [], {}, [1, 2], {"a": 1}, "../case.yaml",
               "/etc/passwd", "../../x.csv", "communities", ".", "a" * 300, 10**30,
               "2016-05-24",
               # plausible values
               0.5, 1.05, 2, 3, 6, 8, 30.0, 60.0]


# -- CSV mutations --------------------------------------------------------------------------
def read_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text())))


def write_rows(path: Path, rows: list[list[str]]) -> None:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    path.write_text(out.getvalue())


@st.composite
def csv_mutation(draw):
    """``(file, operation, arguments)``: one edit of one table."""
    file = draw(st.sampled_from(CSV_FILES))
    op = draw(st.sampled_from(["cell", "cell", "cell", "drop_column", "drop_row",
                               "duplicate_row", "header", "truncate", "empty", "add_column"]))
    return file, op, draw(st.integers(0, 10)), draw(st.integers(0, 10)), draw(
        st.sampled_from(CELLS))


def apply_csv(folder: Path, mutation) -> None:
    file, op, i, j, value = mutation
    path = folder / file
    rows = read_rows(path)
    if not rows:
        return
    header, body = rows[0], rows[1:]
    j = j % len(header)
    if op == "cell" and body:
        body[i % len(body)][j] = value
    elif op == "drop_column":
        header = [c for k, c in enumerate(header) if k != j]
        body = [[c for k, c in enumerate(r) if k != j] for r in body]
    elif op == "drop_row" and body:
        del body[i % len(body)]
    elif op == "duplicate_row" and body:
        body.append(list(body[i % len(body)]))
    elif op == "header":
        header[j] = value
    elif op == "truncate":
        path.write_text(path.read_text()[: i * 7])
        return
    elif op == "empty":
        path.write_text("")
        return
    elif op == "add_column":
        header.append(value or "extra")
        body = [[*r, value] for r in body]
    write_rows(path, [header, *body])


# -- case.yaml mutations --------------------------------------------------------------------
def paths(node, prefix=()):
    """Every key path of a YAML document (mappings and lists)."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(
        node, list) else ()
    for key, value in items:
        yield (*prefix, key)
        yield from paths(value, (*prefix, key))


DOC = yaml.safe_load((FOLDER / "case.yaml").read_text())
YAML_PATHS = list(paths(DOC))


@st.composite
def yaml_mutation(draw):
    """``(path, operation, value)``: one edit of ``case.yaml``."""
    return (draw(st.sampled_from(YAML_PATHS)),
            draw(st.sampled_from(["replace", "replace", "remove", "add"])),
            draw(st.sampled_from(YAML_VALUES)))


def apply_yaml(folder: Path, mutation) -> None:
    key_path, op, value = mutation
    doc = yaml.safe_load((folder / "case.yaml").read_text())
    parent = doc
    try:
        for key in key_path[:-1]:
            parent = parent[key]
        last = key_path[-1]
        parent[last]  # an earlier edit may have removed or replaced the path
    except (KeyError, IndexError, TypeError):
        return
    if op == "replace":
        parent[last] = value
    elif op == "remove":
        del parent[last]
    elif isinstance(parent, dict):
        parent[f"extra_{last}"] = value
    else:
        parent.append(value)
    (folder / "case.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def load_and_solve(folder: Path) -> None:
    """Load, and solve when it loads (exact, no AC check); only our errors may come out.
    ``--hypothesis-show-statistics`` shows how often each outcome came."""
    try:
        case = load_case(folder)
    except MosaikBilevelError:
        event("rejected when loading")
        return
    try:
        result = solve(case, "exact", ac=False)
    except MosaikBilevelError:
        event("loaded, refused when solving")
        return
    event(f"solved: {result.status.value}")


@pytest.mark.timeout(300 + 5 * EXPLORE)
@SETTINGS
@given(st.lists(st.one_of(csv_mutation(), yaml_mutation()), min_size=1, max_size=3))
def test_mutated_case_folder_loads_solves_or_says_why(mutations):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "case"
        shutil.copytree(FOLDER, folder)
        for mutation in mutations:
            if len(mutation) == 5:
                apply_csv(folder, mutation)
            else:
                apply_yaml(folder, mutation)
        load_and_solve(folder)
