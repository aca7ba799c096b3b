"""Bad inputs through the real command line: how many give a clear error.

Each input is a copy of the tiny case folder with one thing broken (or a bad option of a
subcommand), run through ``mosaik_bilevel.cli.main`` in this process. An input gives a
**clear error** when the exit code is 2 and stderr holds exactly one line that names the
file (or the option) and the field; pandapower's notice that numba is missing (printed once
per process where numba is not installed) is not counted. Prints one row per input class
(inputs, exit code 2, one line, names file and field, clear) and every input that is not
clear.

Usage::

    python benchmarks/bad_inputs.py            # all classes, about a minute
    python benchmarks/bad_inputs.py --verbose  # and each input's message
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from mosaik_bilevel.cases.tiny import FOLDER
from mosaik_bilevel.cli import main

NOTICE = ("numba cannot be imported", "Probably the execution is slow", "install numba",
          "set the flag numba=False")
LV_A = "communities/A/lv_network.json"


@dataclass
class BadInput:
    """One bad input: its class, a label, how to make it and what the message must name."""

    kind: str
    label: str
    edit: object = None  # folder -> None, for a case folder
    argv: tuple = ()     # extra or whole arguments
    names: tuple = ()    # fragments the one line must hold (file, field or option)


# -- edits ----------------------------------------------------------------------------------
def yaml_set(*path_and_value):
    *path, value = path_and_value

    def edit(folder: Path) -> None:
        doc = yaml.safe_load((folder / "case.yaml").read_text())
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        (folder / "case.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return edit


def raw_yaml(transform):
    def edit(folder: Path) -> None:
        path = folder / "case.yaml"
        path.write_bytes(transform(path.read_bytes()))
    return edit


def csv_cell(file, column, value, row=0):
    def edit(folder: Path) -> None:
        frame = pd.read_csv(folder / file)
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        frame.to_csv(folder / file, index=False)
    return edit


def csv_frame(file, transform):
    def edit(folder: Path) -> None:
        transform(folder / file)
    return edit


def net_set(file, table, column, value):
    def edit(folder: Path) -> None:
        import pandapower as pp

        net = pp.from_json(str(folder / file))
        net[table][column] = value
        pp.to_json(net, str(folder / file))
    return edit


def json_doc(file, transform):
    def edit(folder: Path) -> None:
        doc = json.loads((folder / file).read_text())
        transform(doc)
        (folder / file).write_text(json.dumps(doc))
    return edit


def prices_file(name, make=None):
    def edit(folder: Path) -> None:
        if make:
            make(folder)
        yaml_set("prices", name)(folder)
    return edit


def alias_bomb(data: bytes) -> bytes:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return ("\n".join(lines) + "\n").encode() + data


def sparse(name, size):
    def make(folder: Path) -> None:
        with open(folder / name, "wb") as fh:
            fh.truncate(size)
    return make


def big_network(folder: Path) -> None:
    sparse("big.json", 201 * 2**20)(folder)
    yaml_set("mv", "network", "big.json")(folder)


def nested_module(doc):
    inner = json.loads(doc["_object"]["bus"]["_object"])
    inner["data"][0][0] = {"_module": "this", "_class": "x", "_object": "1"}
    doc["_object"]["bus"]["_object"] = json.dumps(inner)


def long_time(path: Path) -> None:
    frame = pd.read_csv(path)
    frame["time"] = frame["time"].astype(object)
    frame.loc[1, "time"] = "2016-05-24 19:00" + "0" * 5_000_000
    frame.to_csv(path, index=False)


def garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 64)


# -- the inputs -----------------------------------------------------------------------------
def inputs() -> list[BadInput]:
    """Every bad input, by class (findings 4-7 of issue 15 and further ideas)."""
    paths = "paths (finding 4)"
    silent = "silent wrong results (finding 5)"
    trace = "tracebacks (finding 6)"
    unbounded = "unbounded (finding 7)"
    tables = "tables and networks (more)"
    options = "CLI options (findings 5-6, more)"
    c0 = ("communities", 0)
    out = [
        *[BadInput(paths, f"community name {v!r}", yaml_set(*c0, "name", v),
                   names=("case.yaml", "communities[0].name"))
          for v in ("../..", "/evil", "a/b", "..", ".", "", " x", "x" * 65, "a\\b", 5,
                    None)],
        BadInput(paths, "prices ../prices.csv", prices_file("../prices.csv"),
                 names=("case.yaml", "prices")),
        BadInput(paths, "prices absolute path", prices_file(str(FOLDER / "prices.csv")),
                 names=("case.yaml", "prices")),
        BadInput(paths, "prices symlink out", prices_file("p.csv", lambda f: os.symlink(
            FOLDER / "prices.csv", f / "p.csv")), names=("case.yaml", "prices")),
        BadInput(paths, "network ../ outside", yaml_set("mv", "network", "../x.json"),
                 names=("case.yaml", "mv.network")),
        BadInput(paths, "file name with NUL", prices_file("pri\x00ces.csv"),
                 names=("case.yaml", "prices")),
        BadInput(paths, "file is a folder", prices_file("communities"),
                 names=("case.yaml", "prices")),
        BadInput(paths, "JSON names a module", json_doc("mv_network.json", lambda d: d[
            "_object"].update(x={"_module": "antigravity", "_class": "X", "_object": "{}"})),
            names=("mv_network.json", "module")),
        BadInput(paths, "JSON module inside a table", json_doc("mv_network.json",
                                                               nested_module),
                 names=("mv_network.json", "module")),
        BadInput(paths, "JSON function object", json_doc(LV_A, lambda d: d["_object"].update(
            x={"_module": "pandapower", "_class": "function", "_object": "runpp"})),
            names=("lv_network.json", "function")),
        BadInput(paths, "JSON table as a file path", json_doc(LV_A, lambda d: d["_object"][
            "bus"].update(_object="/etc/x.json")), names=("lv_network.json", "_object.bus")),
        # finding 5
        *[BadInput(silent, f"mv_bus {v!r}", yaml_set(*c0, "mv_bus", v),
                   names=("case.yaml", "mv_bus")) for v in (2.7, True, "two", -1, 99, None)],
        BadInput(silent, "line length < 0", net_set(LV_A, "line", "length_km", -0.1),
                 names=("lv_network.json", "length_km")),
        BadInput(silent, "line resistance < 0", net_set(LV_A, "line", "r_ohm_per_km", -1.0),
                 names=("lv_network.json", "r_ohm_per_km")),
        BadInput(silent, "line reactance nan", net_set("mv_network.json", "line",
                                                       "x_ohm_per_km", float("nan")),
                 names=("mv network", "x_ohm_per_km")),
        BadInput(silent, "line max_i_ka 0", net_set(LV_A, "line", "max_i_ka", 0.0),
                 names=("lv_network.json", "max_i_ka")),
        BadInput(silent, "bus vn_kv -0.4", net_set(LV_A, "bus", "vn_kv", -0.4),
                 names=("lv_network.json", "vn_kv")),
        BadInput(silent, "trafo vkr > vk", net_set(LV_A, "trafo", "vkr_percent", 9.0),
                 names=("lv_network.json", "vkr_percent")),
        BadInput(silent, "trafo HV 20 kV on 12.66 kV", net_set(LV_A, "trafo", "vn_hv_kv", 20.0),
                 names=("lv_network.json", "vn_hv_kv")),
        BadInput(silent, "trafo LV 10 kV on 0.4 kV", net_set(LV_A, "trafo", "vn_lv_kv", 10.0),
                 names=("lv_network.json", "vn_lv_kv")),
        BadInput(silent, "battery end target unreachable", csv_frame(
            "communities/A/batteries.csv", lambda p: pd.read_csv(p).assign(
                e_end_mwh=0.036, p_ch_max_mw=0.001).to_csv(p, index=False)),
            names=("batteries.csv", "e_end_mwh")),
        BadInput(silent, "community vm_set_pu 100", yaml_set(*c0, "vm_set_pu", 100.0),
                 names=("case.yaml", "vm_set_pu")),
        BadInput(silent, "polygon_sides 8.5", yaml_set("polygon_sides", 8.5),
                 names=("case.yaml", "polygon_sides")),
        BadInput(silent, "time with a UTC offset", csv_frame("prices.csv", lambda p: pd.read_csv(
            p).assign(time=lambda f: f.time + "+02:00").to_csv(p, index=False)),
            names=("prices.csv", "time")),
        # finding 6
        BadInput(trace, "case.yaml latin-1", raw_yaml(lambda b: b + "# caf\xe9\n".encode(
            "latin-1")), names=("case.yaml", "UTF-8")),
        BadInput(trace, "case.yaml UTF-16", raw_yaml(lambda b: b.decode().encode("utf-16")),
                 names=("case.yaml", "UTF-8")),
        *[BadInput(trace, f"horizon_hours {v!r}", yaml_set("horizon_hours", v),
                   names=("case.yaml", "horizon_hours"))
          for v in (float("inf"), float("nan"), -1, 1e9, "many")],
        *[BadInput(trace, f"step_minutes {v!r}", yaml_set("step_minutes", v),
                   names=("case.yaml", "step_minutes")) for v in (0, float("inf"), 1e-9, True)],
        *[BadInput(trace, f"communities {v!r}", yaml_set("communities", v),
                   names=("case.yaml", "communities")) for v in ([], None, "A")],
        *[BadInput(trace, f"notes {v!r}", yaml_set("notes", v), names=("case.yaml", "notes"))
          for v in (["a"], "text", 3)],
        BadInput(trace, "trafo sn_mva 0", net_set(LV_A, "trafo", "sn_mva", 0.0),
                 names=("lv_network.json", "sn_mva")),
        BadInput(trace, "transformer_s_mva 0", yaml_set(*c0, "transformer_s_mva", 0),
                 names=("case.yaml", "transformer_s_mva")),
        BadInput(trace, "load above the transformer", csv_frame(
            "communities/A/member_p_mw.csv", lambda p: pd.read_csv(p).assign(h1=1.0).to_csv(
                p, index=False)), names=("member_p_mw.csv", "transformer")),
        BadInput(trace, "costs -3", yaml_set("costs", "battery_wear_per_mwh", -3),
                 names=("case.yaml", "costs.battery_wear_per_mwh")),
        BadInput(trace, "costs .inf", yaml_set("costs", "curtailment_per_mwh", float("inf")),
                 names=("case.yaml", "costs.curtailment_per_mwh")),
        BadInput(trace, "substation vm 2", yaml_set("mv", "substation", "vm_set_pu", 2.0),
                 names=("case.yaml", "mv.substation.vm_set_pu")),
        BadInput(trace, "name a list", yaml_set("name", [1]), names=("case.yaml", "name")),
        BadInput(trace, "5000-digit integer", raw_yaml(lambda b: b.replace(
            b"polygon_sides: 4", b"polygon_sides: " + b"9" * 5000)),
            names=("case.yaml", "file")),
        # finding 7
        *[BadInput(unbounded, f"polygon_sides {v!r}", yaml_set("polygon_sides", v),
                   names=("case.yaml", "polygon_sides")) for v in (10**8, 10**18, 3, 0)],
        BadInput(unbounded, "5 MB time cell", csv_frame("prices.csv", long_time),
                 names=("prices.csv", "time")),
        BadInput(unbounded, "prices /dev/zero", prices_file("zero.csv", lambda f: os.symlink(
            "/dev/zero", f / "zero.csv")), names=("case.yaml", "prices")),
        BadInput(unbounded, "prices a FIFO", prices_file("fifo.csv", lambda f: os.mkfifo(
            f / "fifo.csv")), names=("case.yaml", "prices")),
        BadInput(unbounded, "CSV of 201 MiB", prices_file("big.csv", sparse(
            "big.csv", 201 * 2**20)), names=("case.yaml", "prices")),
        BadInput(unbounded, "network JSON of 201 MiB", big_network,
                 names=("case.yaml", "mv.network")),
        BadInput(unbounded, "YAML alias bomb", raw_yaml(alias_bomb),
                 names=("case.yaml", "aliases")),
        BadInput(unbounded, "YAML nested 100000 deep", raw_yaml(
            lambda b: b + b"deep: " + b"[" * 100_000 + b"]" * 100_000 + b"\n"),
            names=("case.yaml", "file")),
        BadInput(unbounded, "case.yaml of 2 MiB", raw_yaml(lambda b: b + b"#" * 2**21),
                 names=("case.yaml", "limit")),
        BadInput(unbounded, "JSON nested 100000 deep", lambda f: (f / LV_A).write_text(
            "[" * 100_000 + "]" * 100_000), names=("lv_network.json", "file")),
        # tables and networks
        *[BadInput(tables, f"generator p_max_mw {v!r}", csv_cell("generators.csv", "p_max_mw",
                                                                 v),
                   names=("generators.csv", "p_max_mw")) for v in ("nan", "inf", -1, "abc")],
        BadInput(tables, "generator p_init_mw inf", lambda f: csv_frame(
            "generators.csv", lambda p: pd.read_csv(p).assign(p_init_mw="inf").to_csv(
                p, index=False))(f), names=("generators.csv", "p_init_mw")),
        BadInput(tables, "battery e_end_mwh inf", lambda f: csv_frame(
            "communities/A/batteries.csv", lambda p: pd.read_csv(p).assign(
                e_end_mwh="inf").to_csv(p, index=False))(f),
            names=("batteries.csv", "e_end_mwh")),
        BadInput(tables, "member bus True", csv_frame(
            "communities/A/members.csv", lambda p: pd.read_csv(p).assign(bus=True).to_csv(
                p, index=False)), names=("members.csv", "bus")),
        BadInput(tables, "member bus 1e20", csv_cell("communities/A/members.csv", "bus", 1e20),
                 names=("members.csv", "bus")),
        BadInput(tables, "load cell -1", csv_cell("communities/A/member_p_mw.csv", "h1", -1),
                 names=("member_p_mw.csv", "h1")),
        BadInput(tables, "load cell inf", csv_cell("communities/A/member_p_mw.csv", "h1",
                                                   "inf"), names=("member_p_mw.csv", "h1")),
        BadInput(tables, "load column true/false", csv_frame(
            "communities/A/member_p_mw.csv", lambda p: pd.read_csv(p).assign(h1=True).to_csv(
                p, index=False)), names=("member_p_mw.csv", "h1")),
        BadInput(tables, "price cell nan", csv_cell("prices.csv", "upstream_per_mwh", "nan"),
                 names=("prices.csv", "upstream_per_mwh")),
        BadInput(tables, "price column unknown", csv_frame("prices.csv", lambda p: pd.read_csv(
            p).assign(colour=1).to_csv(p, index=False)), names=("prices.csv", "colour")),
        BadInput(tables, "MV load 1e12 MW", csv_cell("mv_load_p_mw.csv", "1", 1e12),
                 names=("mv_load_p_mw.csv", "magnitude")),
        BadInput(tables, "generator cost 1e300", csv_cell("generators.csv", "cost_per_mwh",
                                                          1e300),
                 names=("generators.csv", "cost_per_mwh")),
        BadInput(tables, "substation import 1e12", yaml_set("mv", "substation",
                                                            "p_import_max_mw", 1e12),
                 names=("case.yaml", "p_import_max_mw")),
        BadInput(tables, "line length 1e300", net_set(LV_A, "line", "length_km", 1e300),
                 names=("lv_network.json", "length_km")),
        BadInput(tables, "time missing", csv_cell("prices.csv", "time", ""),
                 names=("prices.csv", "time")),
        BadInput(tables, "binary garbage CSV", csv_frame("prices.csv", garbage),
                 names=("prices.csv", "")),
        BadInput(tables, "empty CSV", csv_frame("prices.csv", lambda p: p.write_text("")),
                 names=("prices.csv", "file")),
        BadInput(tables, "MV load column 1.0", csv_frame("mv_load_p_mw.csv", lambda p: pd.read_csv(
            p).rename(columns={"1": "1.0"}).to_csv(p, index=False)),
            names=("mv_load_p_mw.csv", "1.0")),
        # options
        *[BadInput(options, " ".join(a), None, a, (a[0],)) for a in (
            ("--load-sigma", "nan"), ("--load-sigma", "-1"), ("--pv-sigma", "inf"),
            ("--error-seed", "-2"), ("--lookahead-h", "0"), ("--gate", "12h"))],
        *[BadInput(options, " ".join(a), None, a, (a[0],)) for a in (
            ("--max-iterations", "0"), ("--mip-gap", "-1"), ("--mip-gap", "nan"),
            ("--time-limit", "-1"), ("--time-limit", "nan"), ("--threads", "-1"),
            ("--threads", "x"), ("--workers", "0"), ("--seed", "-1"), ("--days", "-1"),
            ("--days", "0"), ("--step-minutes", "0"))],
        BadInput(options, "--start garbage", None, ("--start", "garbage"), ("start",)),
        BadInput(options, "--start not in the case", None, ("--start", "2020-01-01"),
                 ("start",)),
        BadInput(options, "--day with a folder", None, ("--day", "2016-06-01"), ("--day",)),
        BadInput(options, "--seed with tiny", None, ("--case", "tiny", "--seed", "3"),
                 ("--seed",)),
        BadInput(options, "--step-minutes with a folder", None, ("--step-minutes", "15"),
                 ("--step-minutes",)),
    ]
    return out


SIMULATE_ONLY = {"--load-sigma", "--pv-sigma", "--error-seed", "--lookahead-h", "--gate"}
RANDOM_ONLY = {"--seed", "--days"}


def command(bad: BadInput, folder: Path, out: Path) -> list[str]:
    """The command line of one input (solve, or simulate for its own options)."""
    if bad.edit is not None:
        return ["solve", "--case", str(folder), "--out", str(out), "--no-ac", "--quiet"]
    argv = list(bad.argv)
    sub = "simulate" if argv[0] in SIMULATE_ONLY else "solve"
    case = ["--case", "random"] if argv[0] in RANDOM_ONLY else (
        [] if "--case" in argv else ["--case", str(folder)])
    if argv[0] == "--max-iterations":
        argv += ["--method", "ldd-admm"]
    return [sub, *case, *argv, "--out", str(out), "--no-ac" if sub == "solve" else "--quiet"]


def run_one(bad: BadInput, root: Path) -> dict:
    """Make the input, run it, and judge its message."""
    folder = root / "case"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(FOLDER, folder)
    if bad.edit is not None:
        bad.edit(folder)
    err = io.StringIO()
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(command(bad, folder, root / "out"))
    except SystemExit as exc:
        code = exc.code
    except Exception as exc:  # a traceback: what this benchmark looks for
        code = f"{type(exc).__name__}: {exc}"[:160]
    seconds = time.perf_counter() - t0
    lines = [ln for ln in err.getvalue().splitlines()
             if ln.strip() and not any(n in ln for n in NOTICE)]
    one = len(lines) == 1
    named = one and all(n in lines[0] for n in bad.names)
    return {"kind": bad.kind, "label": bad.label, "code": code, "exit2": code == 2,
            "one_line": one, "named": named, "clear": code == 2 and named,
            "message": lines[0] if one else " | ".join(lines)[:300], "s": seconds}


def table(rows: list[dict]) -> str:
    """The Markdown table: per class, inputs and how many are clear."""
    frame = pd.DataFrame(rows)
    by = frame.groupby("kind", sort=False).agg(
        inputs=("label", "size"), exit_2=("exit2", "sum"), one_line=("one_line", "sum"),
        names_file_and_field=("named", "sum"), clear=("clear", "sum"),
        slowest_s=("s", "max"))
    by.loc["all"] = [*by.iloc[:, :5].sum(), by["slowest_s"].max()]
    lines = ["| input class | inputs | exit 2 | one line | names file/option and field | "
             "clear error | slowest (s) |", "|---|---|---|---|---|---|---|"]
    for kind, r in by.iterrows():
        lines.append(f"| {kind} | {int(r.inputs)} | {int(r.exit_2)} | {int(r.one_line)} | "
                     f"{int(r.names_file_and_field)} | {int(r.clear)} | {r.slowest_s:.2f} |")
    return "\n".join(lines)


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="print each input's message")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for bad in inputs():
            rows.append(run_one(bad, Path(tmp)))
            if args.verbose:
                r = rows[-1]
                print(f"[{'ok' if r['clear'] else '--'}] {r['kind']}: {r['label']}: "
                      f"{r['code']} {r['message']}", flush=True)
    print(table(rows))
    unclear = [r for r in rows if not r["clear"]]
    for r in unclear:
        print(f"not clear: {r['kind']}: {r['label']}: exit {r['code']}: {r['message']}")


if __name__ == "__main__":
    main_()
