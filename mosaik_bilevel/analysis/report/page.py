"""The report page: one self-contained HTML file with its figures as PNG beside it."""

from __future__ import annotations

import html
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .data import COST_COLUMNS, RunData, read_run
from .figures import FIGURES

#: Scalars of a solve's summary shown as key figures, in order.
SOLVE_KEYS = ("case", "method", "pricing", "start", "periods", "step_h", "status",
              "leader_cost", "communities_own_cost", "payments", "follower_cost",
              "system_cost", "mip_gap", "iterations", "converged",
              "deviation_leader_cost", "average_relative_deviation_cost",
              "average_relative_deviation_exchange")

#: Why a figure is missing, by figure.
MISSING = {
    "exchanges": "no exchange table in this folder",
    "dlmp": "no DLMPs (tariff pricing without the follower's prices, or none written)",
    "battery_energy": "no battery table (LDD-ADMM keeps device schedules private, or the "
                      "case has no batteries)",
    "mv_dispatch": "no MV dispatch table",
    "voltages": "no AC voltage envelopes in this folder (solve writes ac.csv unless --no-ac; "
                "simulate writes them to grid.csv)",
    "violations": "no AC validation in this folder",
    "admm": "not an LDD-ADMM run",
}

FINDING_TITLES = {
    "deviation_by_day": "Finding 1: exact vs LDD-ADMM, per day",
    "follower_cost_by_day": "Finding 2: the follower's cost, bilevel vs integrated optimum",
    "hpr": "Finding 3: the relaxation (hpr) vs the bilevel solution",
}
FINDING_CAPTIONS = {
    "deviation": "Relative deviation of LDD-ADMM from the nearest exact optimum per period "
                 "(leader's cost, exchanges); shaded: utility PV at its limit; triangles: "
                 "degenerate DLMP.",
    "follower_cost": "The follower's cost per period under the bilevel solution and under "
                     "the integrated optimum.",
    "hpr": "Total exchange per period: bilevel solution vs the relaxation hpr.",
}

STYLE = """
body { font-family: sans-serif; max-width: 1150px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.text { text-align: left; }
figure { margin: 1.5em 0; } img { max-width: 100%; }
figcaption { font-size: 0.9em; color: #555; }
"""


@dataclass
class Report:
    """A written report: its page, the figures drawn and those left out (with why)."""

    path: Path
    figures: list[str] = field(default_factory=list)
    omitted: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def write_report(folder, out=None) -> Report:
    """Write the report of an output folder to ``out`` (default ``<folder>/report``)."""
    t0 = time.perf_counter()
    run = read_run(folder)
    out = Path(out) if out is not None else Path(folder) / "report"
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out / "report.html")
    sections = []
    for path in run.finding_figures:
        shutil.copyfile(path, out / path.name)
        report.figures.append(path.stem)
        caption = FINDING_CAPTIONS.get(path.stem, path.stem)
        sections.append(f'<figure><img src="{path.name}" alt="{html.escape(caption)}">'
                        f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    for stem, (draw, caption) in FIGURES.items():
        fig = draw(run)
        if fig is None:
            if run.kind != "collection":
                report.omitted[stem] = MISSING[stem]
            continue
        fig.savefig(out / f"{stem}.png", dpi=110)
        report.figures.append(stem)
        sections.append(f'<figure><img src="{stem}.png" alt="{html.escape(caption)}">'
                        f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    body = [f"<h1>{html.escape(_title(run))}</h1>"]
    body += _key_figures(run)
    for name, table in run.findings.items():
        body += [f"<h2>{html.escape(FINDING_TITLES.get(name, name))}</h2>",
                 _table(table, name)]
    if run.costs is not None and len(run.costs):
        body += ["<h2>Costs</h2>", _table(run.costs, "costs", columns=list(COST_COLUMNS))]
    if sections:
        body += ["<h2>Figures</h2>", *sections]
    links = [r for r in run.runs if (r / "report" / "report.html").exists()]
    if links:
        body += ["<h2>Reports of the runs</h2><ul>"] + [
            f'<li><a href="{html.escape(os.path.relpath(r / "report" / "report.html", out))}">'
            f"{html.escape(str(r.relative_to(run.folder)))}</a></li>" for r in links] + ["</ul>"]
    if report.omitted:
        body += ["<h2>Not shown</h2><ul>"] + [
            f"<li>{stem}: {html.escape(why)}</li>" for stem, why in report.omitted.items()
        ] + ["</ul>"]
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(_title(run))}</title><style>{STYLE}</style></head>"
            f"<body>{''.join(body)}</body></html>")
    report.path.write_text(page, encoding="utf-8")
    report.seconds = time.perf_counter() - t0
    return report


def _title(run: RunData) -> str:
    s = run.summary
    if run.kind == "solve":
        return f"{s.get('method')}/{s.get('pricing')} on {s.get('case')} from {s.get('start')}"
    if run.kind == "simulate":
        days = s.get("days") or [{}]
        return (f"Simulation, {s.get('method')}/{s.get('pricing')}, {len(days)} day(s) from "
                f"{days[0].get('day')}")
    if "experiments" in s:
        days = ", ".join(d["day"] for d in s["experiments"].get("days", []))
        return f"Experiments on {s['experiments'].get('case')}: {days}"
    return f"Runs in {run.folder.name}"


def _key_figures(run: RunData) -> list[str]:
    s = run.summary
    if run.kind == "solve":
        rows = [(k, s[k]) for k in SOLVE_KEYS if s.get(k) is not None]
        cert = s.get("certificate")
        if cert:
            rows.append(("certificate", "passed" if cert.get("passed") else "FAILED"))
        rows += [(f"time: {k} (s)", v) for k, v in (s.get("times_s") or {}).items()
                 if v is not None]
        rows += [(f"AC: {k}", v) for k, v in (s.get("ac") or {}).items()
                 if not isinstance(v, list)]
        rows += [(f"transformers: {k}", v) for k, v in (s.get("transformers") or {}).items()
                 if not isinstance(v, dict)]
        out = ["<h2>Key figures</h2>", _pairs(rows)]
        corr = s.get("ac_correction")
        if corr:  # the price of feasibility: the costs before and after the correction
            out += ["<h2>AC correction: the price of feasibility</h2>", _pairs(
                [("leader cost before / after", f"{_fmt(corr['leader_cost_before'])} / "
                                               f"{_fmt(s.get('leader_cost'))}"),
                 ("follower cost before / after", f"{_fmt(corr['follower_cost_before'])} / "
                                                 f"{_fmt(s.get('follower_cost'))}"),
                 ("system cost before / after", f"{_fmt(corr['system_cost_before'])} / "
                                               f"{_fmt(s.get('system_cost'))}"),
                 ("price of feasibility", corr["price_of_feasibility"]),
                 ("rounds", f"{corr['rounds']} of {corr['max_rounds']}"),
                 ("within tolerance", corr["converged"]), ("message", corr.get("message"))])]
            if run.ac_correction is not None:
                out.append(_table(run.ac_correction, "ac_correction"))
        return out
    if run.kind == "simulate":
        rows = [(k, s[k]) for k in ("method", "pricing", "setup_s", "run_s") if k in s]
        rows += [(f"time: {k} (s)", v) for k, v in (s.get("times_s") or {}).items()]
        out = ["<h2>Key figures</h2>", _pairs(rows)]
        if run.days is not None:
            out += ["<h2>Per day</h2>", _table(run.days, "days")]
        return out
    out = []
    for d in (s.get("experiments") or {}).get("days", []):
        out.append(f"<p>{html.escape(d['day'])}: {html.escape(d['why'])}</p>")
    found = ", ".join(html.escape(r) for r in s.get("runs", []))
    return [*out, f"<p>Runs found: {found}</p>"]


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def _pairs(rows) -> str:
    cells = "".join(f'<tr><th class="text">{html.escape(str(k))}</th>'
                    f'<td data-key="{html.escape(str(k))}">{html.escape(_fmt(v))}</td></tr>'
                    for k, v in rows)
    return f'<table class="key">{cells}</table>'


def _table(df: pd.DataFrame, name: str, columns: list[str] | None = None) -> str:
    columns = [c for c in (columns or list(df.columns)) if c in df]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for _, row in df.iterrows():
        cells = "".join(
            f'<td class="{"text" if isinstance(row[c], str) else "num"}" '
            f'data-col="{html.escape(str(c))}">{html.escape(_fmt(_plain(row[c])))}</td>'
            for c in columns)
        body.append(f"<tr>{cells}</tr>")
    return f'<table class="{name}"><tr>{head}</tr>{"".join(body)}</table>'


def _plain(v):
    if hasattr(v, "item"):
        return v.item()
    return v
