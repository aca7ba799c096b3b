"""Every bad input of issue 15 through the real command line: exit code 2 and one line that
names the file (or option), the field and the reason; the same inputs from Python raise a
:class:`~mosaik_bilevel.errors.MosaikBilevelError`."""

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mosaik_bilevel.api import solve
from mosaik_bilevel.cases import load_case
from mosaik_bilevel.cases.tiny import FOLDER
from mosaik_bilevel.cli import main
from mosaik_bilevel.errors import MosaikBilevelError, OptionsError
from mosaik_bilevel.methods.ldd_admm import ADMMOptions
from mosaik_bilevel.solvers.highs import SolverOptions

pytestmark = pytest.mark.timeout(300)


# -- edits of a copy of the tiny case folder ------------------------------------------------
def yaml_edit(edit):
    def apply(folder: Path) -> None:
        path = folder / "case.yaml"
        doc = yaml.safe_load(path.read_text())
        edit(doc)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return apply


def csv_edit(file: str, edit):
    def apply(folder: Path) -> None:
        frame = pd.read_csv(folder / file)
        frame = edit(frame)
        frame.to_csv(folder / file, index=False)
    return apply


def net_edit(file: str, edit):
    def apply(folder: Path) -> None:
        import pandapower as pp

        net = pp.from_json(str(folder / file))
        edit(net)
        pp.to_json(net, str(folder / file))
    return apply


def json_edit(file: str, edit):
    def apply(folder: Path) -> None:
        doc = json.loads((folder / file).read_text())
        edit(doc)
        (folder / file).write_text(json.dumps(doc))
    return apply


def community(key, value):
    return yaml_edit(lambda d: d["communities"][0].update({key: value}))


def top(key, value):
    return yaml_edit(lambda d: d.update({key: value}))


def prices_to(name, make=None):
    def apply(folder: Path) -> None:
        if make:
            make(folder)
        yaml_edit(lambda d: d.update(prices=name))(folder)
    return apply


def alias_bomb(folder: Path) -> None:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    path = folder / "case.yaml"
    path.write_text("\n".join(lines) + "\n" + path.read_text())


def huge_time_cell(frame):
    frame["time"] = frame["time"].astype(object)
    frame.loc[1, "time"] = "2016-05-24 19:00" + "0" * 2_000_000
    return frame


def foreign_module(doc):
    doc["_object"]["extra"] = {"_module": "antigravity", "_class": "X", "_object": "{}"}


def sparse_file(folder: Path) -> None:
    with open(folder / "big.csv", "wb") as fh:
        fh.truncate(201 * 2**20)


LV_A = "communities/A/lv_network.json"
BAD_FOLDERS = {
    # finding 4: paths
    "community name ../..": (community("name", "../.."), "case.yaml", "communities[0].name"),
    "community name absolute": (community("name", "/x"), "case.yaml",
                                "communities[0].name"),
    "file ../ outside": (prices_to("../prices.csv"), "case.yaml", "prices"),
    "file absolute path": (prices_to(str(FOLDER / "prices.csv")), "case.yaml", "prices"),
    "symlink pointing out": (prices_to("p.csv", lambda f: os.symlink(
        FOLDER / "prices.csv", f / "p.csv")), "case.yaml", "prices"),
    "file name too long (found by fuzzing)": (prices_to("a" * 300), "case.yaml", "prices"),
    "network JSON names a module": (json_edit("mv_network.json", foreign_module),
                                    "mv_network.json", "names the module 'antigravity'"),
    # finding 5: silent wrong results
    "mv_bus 2.7": (community("mv_bus", 2.7), "case.yaml", "communities[0].mv_bus"),
    "mv_bus true": (community("mv_bus", True), "case.yaml", "communities[0].mv_bus"),
    "negative line length": (net_edit(LV_A, lambda n: n.line.__setitem__("length_km", -0.1)),
                             "lv_network.json", "length_km"),
    "negative resistance": (net_edit(LV_A, lambda n: n.line.__setitem__("r_ohm_per_km", -1)),
                            "lv_network.json", "r_ohm_per_km"),
    "battery end target unreachable": (
        csv_edit("communities/A/batteries.csv",
                 lambda f: f.assign(e_end_mwh=0.036, p_ch_max_mw=0.001)),
        "batteries.csv", "e_end_mwh"),
    "transformer HV voltage mismatch": (
        net_edit(LV_A, lambda n: n.trafo.__setitem__("vn_hv_kv", 20.0)),
        "lv_network.json", "vn_hv_kv"),
    # finding 6: tracebacks
    "case.yaml not UTF-8": (lambda f: (f / "case.yaml").write_bytes(
        (f / "case.yaml").read_bytes() + "# caf\xe9\n".encode("latin-1")),
        "case.yaml", "not UTF-8"),
    "horizon_hours .inf": (top("horizon_hours", float("inf")), "case.yaml", "horizon_hours"),
    "communities []": (top("communities", []), "case.yaml", "communities"),
    "notes not a mapping": (top("notes", ["a", "b"]), "case.yaml", "notes"),
    "transformer sn_mva 0": (net_edit(LV_A, lambda n: n.trafo.__setitem__("sn_mva", 0.0)),
                             "lv_network.json", "sn_mva"),
    "load above the transformer": (
        csv_edit("communities/A/member_p_mw.csv", lambda f: f.assign(h1=1.0)),
        "member_p_mw.csv", "transformer"),
    "price not finite": (csv_edit("prices.csv", lambda f: f.assign(upstream_per_mwh="inf")),
                         "prices.csv", "upstream_per_mwh"),
    "load beyond the magnitude limit": (
        csv_edit("mv_load_p_mw.csv", lambda f: f.assign(**{"1": 1e12})), "mv_load_p_mw.csv",
        "magnitude limit"),
    # finding 7: unbounded
    "polygon_sides 1e8": (top("polygon_sides", 100_000_000), "case.yaml", "polygon_sides"),
    "huge time cell": (csv_edit("prices.csv", huge_time_cell), "prices.csv", "time"),
    "prices /dev/zero": (prices_to("zero.csv", lambda f: os.symlink("/dev/zero", f / "zero.csv")),
                         "case.yaml", "prices"),
    "prices a FIFO": (prices_to("fifo.csv", lambda f: os.mkfifo(f / "fifo.csv")), "case.yaml",
                      "not a regular file"),
    "file above the size limit": (prices_to("big.csv", sparse_file), "case.yaml",
                                  "more than the limit"),
    "YAML alias bomb": (alias_bomb, "case.yaml", "aliases are not allowed"),
}


@pytest.fixture
def folder(tmp_path) -> Path:
    target = tmp_path / "case"
    shutil.copytree(FOLDER, target)
    return target


def run_cli(argv, capsys, *, stdout=False):
    """The exit code of ``main(argv)`` (argparse exits through SystemExit) and its stderr
    (and its stdout, with ``stdout``)."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return (code, captured.out, captured.err) if stdout else (code, captured.err)


def error_lines(err: str) -> list[str]:
    """stderr's lines, less pandapower's notice that numba is missing (this machine's)."""
    notice = ("numba cannot be imported", "Probably the execution is slow", "install numba",
              "set the flag numba=False")
    return [line for line in err.splitlines()
            if line.strip() and not any(n in line for n in notice)]


@pytest.mark.parametrize("name", list(BAD_FOLDERS))
def test_bad_case_folder_exits_2_with_one_line(name, folder, tmp_path, capsys):
    edit, file, field = BAD_FOLDERS[name]
    edit(folder)
    code, err = run_cli(["solve", "--case", str(folder), "--out", str(tmp_path / "out"),
                         "--no-ac", "--quiet"], capsys)
    lines = error_lines(err)
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert file in lines[0] and field in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("name", list(BAD_FOLDERS))
def test_bad_case_folder_from_python(name, folder):
    edit, file, field = BAD_FOLDERS[name]
    edit(folder)
    with pytest.raises(MosaikBilevelError) as info:
        solve(str(folder), ac=False)
    assert file in str(info.value) and field in str(info.value)


BAD_OPTIONS = [
    # finding 5
    (["simulate", "--case", "tiny", "--load-sigma", "nan"], "--load-sigma"),
    (["simulate", "--case", "tiny", "--pv-sigma", "-0.1"], "--pv-sigma"),
    (["solve", "--case", "tiny", "--method", "ldd-admm", "--max-iterations", "0"],
     "--max-iterations"),
    (["solve", "--case", str(FOLDER), "--day", "2016-06-01"], "--day"),
    # finding 6
    (["solve", "--case", "random", "--seed", "-1"], "--seed"),
    (["solve", "--case", "random", "--days", "-1"], "--days"),
    (["solve", "--case", "tiny", "--start", "garbage"], "start"),
    (["solve", "--case", "tiny", "--mip-gap", "-1"], "--mip-gap"),
    (["solve", "--case", "tiny", "--time-limit", "-1"], "--time-limit"),
    (["solve", "--case", "tiny", "--threads", "-1"], "--threads"),
    (["simulate", "--case", "tiny", "--gate", "25:00"], "--gate"),
    (["simulate", "--case", "tiny", "--lookahead-h", "inf"], "--lookahead-h"),
    (["experiments", "tiny", "--workers", "0"], "--workers"),
    (["experiments", "tiny", "--day", "2016-05-24"], "--day"),
    (["export-case", "--case", "tiny", "--seed", "3"], "--seed"),
]


@pytest.mark.parametrize("argv,option", BAD_OPTIONS, ids=[" ".join(a[:1] + a[3:])
                                                         for a, _ in BAD_OPTIONS])
def test_bad_option_exits_2_with_one_line(argv, option, tmp_path, capsys):
    code, err = run_cli([*argv, "--out", str(tmp_path / "out")], capsys)
    lines = error_lines(err)
    assert code == 2, err
    assert len(lines) == 1 and option in lines[0], err


def test_options_from_python_raise_options_errors():
    for make in (lambda: SolverOptions(mip_rel_gap=-1.0), lambda: SolverOptions(threads=0),
                 lambda: SolverOptions(time_limit_s=float("nan")),
                 lambda: ADMMOptions(max_iterations=0)):
        with pytest.raises(OptionsError):
            make()
    with pytest.raises(MosaikBilevelError, match="random: seed"):
        load_case("random", seed=-1)
    with pytest.raises(MosaikBilevelError, match="start: not a time"):
        solve("tiny", start="garbage", ac=False)
    for kwargs in ({"compare_exact": True}, {"method": "ldd_admm", "workers": 0},
                   {"method": "ldd_admm", "backend": "nope"}):
        with pytest.raises(OptionsError):
            solve("tiny", ac=False, **kwargs)


def test_export_writes_nothing_outside_out(tmp_path, capsys):
    """A Python case whose community is named ``../..`` is refused before anything is
    written; a folder that says so is refused when read."""
    from mosaik_bilevel.data.folder import save_case

    case = load_case("tiny")
    case.communities[0].name = "../../escape"
    with pytest.raises(MosaikBilevelError, match="not a safe name"):
        save_case(case, tmp_path / "a" / "b")
    assert not (tmp_path / "escape").exists() and not (tmp_path / "a").exists()
    folder = tmp_path / "case"
    shutil.copytree(FOLDER, folder)
    community("name", "../..")(folder)
    code, err = run_cli(["export-case", "--case", str(folder), "--out",
                         str(tmp_path / "x" / "y")], capsys)
    assert code == 2 and "communities[0].name" in err
    assert not (tmp_path / "x").exists()


def test_no_ac_power_flow_converging_prints_n_a(tmp_path, capsys, monkeypatch):
    """No AC power flow converges: the summary has no voltages, and the CLI says ``n/a``
    instead of a TypeError after the results are written."""
    import pandapower as pp

    def diverge(net, *args, **kwargs):
        raise pp.LoadflowNotConverged("diverged (test)")

    monkeypatch.setattr(pp, "runpp", diverge)
    code, out, err = run_cli(["solve", "--case", "tiny", "--out", str(tmp_path / "out")],
                             capsys, stdout=True)
    assert code == 0, err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["ac"]["not_converged"] == summary["ac"]["steps"] == 3
    assert "3 not converged, vm n/a..n/a pu" in out and "written to" in out
