"""The documentation says what the code does: generated parts match, commands match CI."""

from pathlib import Path

from mosaik_bilevel.cases.paper import CHOICES
from mosaik_bilevel.data.schema import PRICE_COLUMNS, TABLES, markdown_table

ROOT = Path(__file__).resolve().parents[1]


def test_case_format_tables_are_the_schema():
    doc = (ROOT / "docs" / "case_format.md").read_text()
    for name, schema in TABLES.items():
        assert f"### `{name}.csv`\n\n{markdown_table(schema)}" in doc, name
    assert markdown_table(PRICE_COLUMNS) in doc


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = 'pip install -e ".[test]" && python -m pytest -q'
    assert command in readme and command in ci


def test_paper_choices_are_documented():
    doc = (ROOT / "docs" / "paper_case.md").read_text()
    for item in CHOICES["item"]:
        assert item in doc, item


def test_package_data_ships_the_whole_tiny_folder():
    """A non-editable install must carry every file of the shipped case folder."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    patterns = cfg["options.package_data"]["mosaik_bilevel.cases"].split()
    base = ROOT / "mosaik_bilevel" / "cases"
    # setuptools expands these like pathlib's glob: "*" does not cross a "/"
    shipped = {p for pattern in patterns for p in base.glob(pattern) if p.is_file()}
    files = {p for p in (base / "tiny").rglob("*") if p.is_file()}
    assert files and files <= shipped, sorted(str(f) for f in files - shipped)[:3]
