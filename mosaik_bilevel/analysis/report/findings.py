"""The figures of ``mosaik-bilevel experiments``: the paper's three findings, per day.

Drawn from the files an experiments folder holds (so they can be redrawn:
:func:`draw_findings`), with the report's own step-plot helper.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .figures import period_steps

#: A period deviates when its relative deviation (cost or exchange) exceeds this.
DEVIATES = 1e-3


def draw_findings(out) -> list[str]:
    """Draw the findings' figures from an experiments folder; returns the files written."""
    out = Path(out)
    info = json.loads((out / "experiments.json").read_text())
    days = [(d["day"], d["why"]) for d in info["days"]]
    tables = {name: pd.read_csv(out / f"{name}.csv", parse_dates=["time"])
              for name in ("deviation", "follower_cost")}
    by_day = {name: pd.read_csv(out / f"{name}.csv").set_index("day")
              for name in ("follower_cost_by_day", "hpr")}
    exchanges = {(day, run): pd.read_csv(out / day / run / "exchanges.csv",
                                         parse_dates=["time"])
                 for day, _ in days for run in ("exact", "hpr")}
    written = []
    for stem, draw in (("deviation", _deviation_figure), ("follower_cost", _follower_figure),
                       ("hpr", _hpr_figure)):
        fig = draw(days, tables, by_day, exchanges)
        fig.savefig(out / f"{stem}.png", dpi=110)
        written.append(f"{stem}.png")
    return written


def _day_axes(days, title: str, height: float = 3.0):
    fig = Figure(figsize=(10.0, height * len(days)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(days), 1, squeeze=False)).ravel()
    fig.suptitle(title)
    return fig, axes


def _hour(times: pd.Series) -> np.ndarray:
    t = pd.to_datetime(times)
    return (t.dt.hour + t.dt.minute / 60).to_numpy(dtype=float)


def _deviation_figure(days, tables, by_day, exchanges) -> Figure:
    table = tables["deviation"]
    fig, axes = _day_axes(days, "Exact vs LDD-ADMM: relative deviation per period, from the "
                                "nearest exact optimum")
    for ax, (day, why) in zip(axes, days, strict=True):
        t = table[table["day"] == day]
        hours = _hour(t["time"])
        step = hours[1] - hours[0] if len(hours) > 1 else 1.0
        width = 0.4 * step
        ax.set_yscale("log", nonpositive="clip")
        for h, at in zip(hours, t["pv_at_limit"].astype(bool), strict=True):
            if at:
                ax.axvspan(h, h + step, color="#f2b134", alpha=0.25, lw=0)
        suffix = "_nearest" if "relative_deviation_cost_nearest" in t else ""
        floor = 1e-7
        for offset, col, label, color in ((0.0, "cost", "leader's cost", "#4c72b0"),
                                          (width, "exchange", "exchanges", "#dd8452")):
            v = np.maximum(t[f"relative_deviation_{col}{suffix}"].to_numpy(float), floor)
            ax.bar(hours + offset, v - floor, bottom=floor, width=width, align="edge",
                   label=label, color=color)
        degenerate = hours[t["degenerate_dlmp"].astype(bool).to_numpy()]
        ax.plot(degenerate + width, np.full(len(degenerate), 2 * floor), "kv", ms=6,
                label="degenerate DLMP")
        ax.axhline(DEVIATES, color="grey", lw=0.8, ls=":", label=f"{DEVIATES:g} (deviates)")
        ax.axvspan(0, 0, color="#f2b134", alpha=0.25, label="utility PV at its limit")
        ax.set_ylim(floor, 1.0)
        ax.set_xlim(0, 24)
        ax.set_xlabel("hour of the day")
        ax.set_ylabel("relative deviation (–, log)")
        ax.set_title(f"{day}: {why}", fontsize=10)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _steps(times, values):
    """Step-plot data over the hours of the day, the last period drawn to its end."""
    edges, values = period_steps(times, values)
    hours = (edges - edges[0].normalize()) / pd.Timedelta(hours=1)
    return np.asarray(hours, dtype=float), values


def _follower_figure(days, tables, by_day, exchanges) -> Figure:
    table = tables["follower_cost"]
    fig, axes = _day_axes(days, "The follower's cost: bilevel solution vs integrated optimum")
    for ax, (day, why) in zip(axes, days, strict=True):
        t = table[table["day"] == day]
        row = by_day["follower_cost_by_day"].loc[day]
        ax.step(*_steps(t["time"], t["follower_cost_bilevel"]), where="post",
                label="bilevel", color="#c44e52")
        ax.step(*_steps(t["time"], t["follower_cost_integrated"]), where="post", ls="--",
                label="integrated optimum", color="#4c72b0")
        ax.set_xlim(0, 24)
        ax.set_xlabel("hour of the day")
        ax.set_ylabel("follower's cost (cost units per period)")
        ax.set_title(f"{day}: {why}; day total bilevel {row.follower_cost_bilevel:.1f}, "
                     f"integrated {row.follower_cost_integrated:.1f}", fontsize=10)
        ax.legend(fontsize=8)
    return fig


def _hpr_figure(days, tables, by_day, exchanges) -> Figure:
    fig, axes = _day_axes(days, "hpr (relaxation) vs bilevel: total exchange per period")
    for ax, (day, _why) in zip(axes, days, strict=True):
        row = by_day["hpr"].loc[day]
        for run, label, style in (("exact", "bilevel", {}), ("hpr", "hpr", {"ls": "--"})):
            ex = exchanges[day, run]
            total = ex.groupby("time")["p_mw"].sum()
            ax.step(*_steps(total.index, total.to_numpy()), where="post", label=label,
                    **style)
        ax.axhline(0.0, color="grey", lw=0.6)
        ax.set_xlim(0, 24)
        ax.set_xlabel("hour of the day")
        ax.set_ylabel("Σ exchanges (MW, import +)")
        ax.set_title(f"{day}: follower cost bilevel {row.follower_cost_bilevel:.1f}, hpr "
                     f"dispatch {row.follower_cost_hpr_dispatch:.1f}, best response at hpr "
                     f"exchanges {row.follower_cost_at_hpr_exchanges:.1f}", fontsize=10)
        ax.legend(fontsize=8)
    return fig
