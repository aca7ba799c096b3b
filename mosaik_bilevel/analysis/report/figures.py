"""The report's figures: plain matplotlib, drawn without a display.

Each function takes a :class:`~mosaik_bilevel.analysis.report.data.RunData` and returns a
:class:`matplotlib.figure.Figure`, or None when the run has nothing to draw for it. Axes carry
units; a time axis shows dates and hours.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .data import RunData

SOURCE_LABELS = {"substation": "upstream grid (substation)", "conventional": "conventional units",
                 "pv": "utility-scale PV"}
SOURCE_COLORS = {"substation": "#4c72b0", "conventional": "#8c564b", "pv": "#f2b134"}
MODEL_STYLE = {"AC": {"color": "#c44e52"}, "LinDistFlow": {"color": "#4c72b0", "ls": "--"}}


def _time(values) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(values))


def _time_axis(ax, maxticks: int = 8) -> None:
    locator = AutoDateLocator(minticks=3, maxticks=maxticks)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_xlabel("time")


def period_steps(times, *columns, step_h: float = 1.0):
    """Step-plot data: every period drawn over its whole length (the last one included)."""
    t = _time(times)
    step = (t[-1] - t[-2]) if len(t) > 1 else pd.Timedelta(hours=step_h)
    edges = t.append(pd.DatetimeIndex([t[-1] + step]))
    return (edges, *[np.append(np.asarray(c, dtype=float), float(np.asarray(c)[-1]))
                     for c in columns])


def _figure(width=10.0, height=4.0) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def exchanges(run: RunData) -> Figure | None:
    """One panel per community: its exchange with the MV grid (scheduled vs realised)."""
    ex = run.exchanges
    if ex is None or ex.empty:
        return None
    names = list(dict.fromkeys(ex["community"]))
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig = _figure(4.0 * cols, 2.6 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
                         ).ravel()
    realised = "p_scheduled_mw" in ex
    for ax, name in zip(axes, names, strict=False):
        c = ex[ex["community"] == name]
        cols = [c["p_mw"], c["p_scheduled_mw"]] if realised else [c["p_mw"]]
        t, p, *sched = period_steps(c["time"], *cols, step_h=run.step_h)
        ax.step(t, p, where="post", lw=1.2,
                label="realised" if realised else "cleared", color="#4c72b0")
        if realised:
            ax.step(t, sched[0], where="post", lw=1.0, ls="--", color="#dd8452",
                    label="scheduled")
        ax.axhline(0.0, color="grey", lw=0.6)
        ax.set_title(str(name), fontsize=10)
        ax.set_ylabel("P (MW, import +)")
        _time_axis(ax, maxticks=4)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8)
    fig.suptitle("Exchange of each community at its MV bus")
    return fig


def dlmp_heatmap(run: RunData) -> Figure | None:
    """DLMPs per MV bus and period."""
    d = run.dlmp
    if d is None or d.empty:
        return None
    grid = d.pivot_table(index="bus", columns="time", values="dlmp_per_mwh", aggfunc="first")
    grid = grid.reindex(sorted(grid.index, key=_bus_key))
    fig = _figure(10.0, min(6.0, 0.12 * len(grid) + 2.2))
    ax = fig.subplots()
    edges = period_steps(grid.columns, step_h=run.step_h)[0]
    mesh = ax.pcolormesh(edges, np.arange(len(grid) + 1), grid.to_numpy(dtype=float),
                         cmap="viridis", shading="flat")
    ax.set_yticks(np.arange(len(grid)) + 0.5, [str(b) for b in grid.index],
                  fontsize=7 if len(grid) > 12 else 9)
    ax.set_ylabel("MV bus")
    _time_axis(ax)
    fig.colorbar(mesh, ax=ax, label="DLMP (cost units/MWh)")
    ax.set_title("Distribution locational marginal prices")
    return fig


def battery_energy(run: RunData) -> Figure | None:
    """Battery energy per community over time."""
    b = run.battery_energy
    if b is None or b.empty:
        return None
    fig = _figure()
    ax = fig.subplots()
    for name, g in b.groupby("community", sort=False):
        ax.plot(_time(g["time"]), g["e_mwh"], lw=1.4, marker="." if len(g) <= 48 else None,
                label=str(name))
    ax.set_ylabel("battery energy (MWh)")
    ax.set_ylim(bottom=0.0)
    _time_axis(ax)
    ax.legend(fontsize=8, ncols=min(6, b["community"].nunique()))
    ax.set_title("Battery state of energy per community (sum over its batteries)")
    return fig


def mv_dispatch(run: RunData) -> Figure | None:
    """MV dispatch stacked by source (exports below zero)."""
    d = run.mv_dispatch
    if d is None or d.empty:
        return None
    wide = d.pivot_table(index="time", columns="source", values="p_mw", aggfunc="sum").fillna(0)
    t = _time(wide.index)
    width = (t[1] - t[0]) * 0.9 if len(t) > 1 else pd.Timedelta(hours=0.9 * run.step_h)
    fig = _figure()
    ax = fig.subplots()
    pos = np.zeros(len(t))
    neg = np.zeros(len(t))
    for source in [s for s in SOURCE_LABELS if s in wide] + [
            s for s in wide if s not in SOURCE_LABELS]:
        v = wide[source].to_numpy(dtype=float)
        up, down = np.clip(v, 0, None), np.clip(v, None, 0)
        color = SOURCE_COLORS.get(source)
        ax.bar(t, up, width=width, bottom=pos, align="edge", color=color,
               label=SOURCE_LABELS.get(source, source))
        if (down < 0).any():
            ax.bar(t, down, width=width, bottom=neg, align="edge", color=color, alpha=0.5)
        pos += up
        neg += down
    ax.axhline(0.0, color="black", lw=0.6)
    ax.set_ylabel("active power (MW; export to upstream < 0)")
    _time_axis(ax)
    ax.legend(fontsize=8)
    ax.set_title("MV dispatch by source")
    return fig


def voltages(run: RunData) -> Figure | None:
    """Voltage envelopes (lowest and highest bus) at MV and LV: AC vs LinDistFlow."""
    v = run.voltages
    if v is None or v.empty:
        return None
    levels = [lv for lv in ("MV", "LV") if (v["level"] == lv).any()]
    fig = _figure(10.0, 3.2 * len(levels))
    axes = np.atleast_1d(fig.subplots(len(levels), 1, sharex=True, squeeze=False)).ravel()
    bands = run.summary.get("ac", {}) if run.kind == "solve" else run.summary
    for ax, level in zip(axes, levels, strict=True):
        for model, style in MODEL_STYLE.items():
            g = v[(v["level"] == level) & (v["model"] == model)]
            if g.empty:
                continue
            t, lo, hi = period_steps(g["time"], g["vm_min_pu"], g["vm_max_pu"],
                                 step_h=run.step_h)
            if model == "AC":
                ax.fill_between(t, lo, hi, step="post", alpha=0.25,
                                color=style["color"], label="AC (pandapower): min–max")
            else:
                ax.step(t, lo, where="post", lw=1.2, **style,
                        label="LinDistFlow at the same injections: min, max")
                ax.step(t, hi, where="post", lw=1.2, **style)
        band = bands.get(f"{level.lower()}_vm_band_pu")
        if band:
            for y in band:
                ax.axhline(y, color="black", lw=0.8, ls=":")
        ax.set_ylabel(f"{level} voltage (pu)")
        ax.set_title(f"{level} voltage envelope" + (" (dotted: voltage band)" if band else ""),
                     fontsize=10)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        _time_axis(ax)
    for ax in axes[:-1]:
        ax.set_xlabel("")
    return fig


def violations(run: RunData) -> Figure | None:
    """Buses outside their band and overloaded branches per step; failed power flows."""
    v = run.violations
    if v is None or v.empty:
        return None
    t = _time(v["time"])
    fig = _figure(10.0, 3.2)
    ax = fig.subplots()
    edges, vm, load = period_steps(v["time"], pd.to_numeric(v["vm_violations"], errors="coerce"),
                               pd.to_numeric(v["loading_violations"], errors="coerce"),
                               step_h=run.step_h)
    ax.step(edges, vm, where="post", label="buses outside their voltage band",
            color="#c44e52")
    ax.step(edges, load, where="post", label="lines/transformers above 100 %",
            color="#8172b3")
    failed = ~v["converged"].astype(str).str.lower().isin(["true", "1", "1.0"])
    if failed.any():
        ax.plot(t[failed.to_numpy()], np.zeros(int(failed.sum())), "kx", ms=8,
                label="power flow did not converge")
    ax.set_ylabel("count per step")
    ax.set_ylim(bottom=0)
    _time_axis(ax)
    ax.legend(fontsize=8)
    ax.set_title("AC violations")
    return fig


def admm_residuals(run: RunData) -> Figure | None:
    """LDD-ADMM residuals (against their tolerances) and ρ per iteration, per clearing."""
    if not run.residuals:
        return None
    fig = _figure(12.0, 3.6)
    axes = fig.subplots(1, 3)
    labels = list(run.residuals)
    for label in labels:
        r = run.residuals[label]
        it = r["iteration"]
        name = label if len(labels) <= 8 else None
        (line,) = axes[0].semilogy(it, _positive(r["primal_residual"]), lw=1.2, label=name)
        axes[0].semilogy(it, r["eps_primal"], lw=0.8, ls=":", color=line.get_color())
        axes[1].semilogy(it, _positive(r["dual_residual"]), lw=1.2, color=line.get_color())
        axes[1].semilogy(it, r["eps_dual"], lw=0.8, ls=":", color=line.get_color())
        axes[2].semilogy(it, r["rho"], lw=1.2, color=line.get_color())
    for ax, title, unit in ((axes[0], "primal residual ‖x − z‖", "MW"),
                            (axes[1], "dual residual ρ‖z − z_prev‖", "cost units/MW"),
                            (axes[2], "penalty ρ", "cost units/MW²")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iteration")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(unit)
    axes[0].plot([], [], color="grey", ls=":", label="tolerance")
    axes[0].legend(fontsize=7)
    fig.suptitle("LDD-ADMM convergence" + (f" ({len(labels)} clearings)" if len(labels) > 1
                                           else ""))
    return fig


def _positive(values: pd.Series) -> np.ndarray:
    """Values for a log axis: zeros (an unchanged iterate) left out of the line."""
    v = values.to_numpy(dtype=float)
    return np.where(v > 1e-12 * max(np.nanmax(np.abs(v), initial=0.0), 1e-300), v, np.nan)


def _bus_key(bus):
    try:
        return (0, int(bus))
    except (TypeError, ValueError):
        return (1, str(bus))


#: Figure file stem → (function, caption).
FIGURES = {
    "exchanges": (exchanges, "Exchange profile of each community at its MV bus (import "
                             "positive); in a simulation the realised exchange beside the "
                             "cleared schedule."),
    "dlmp": (dlmp_heatmap, "DLMP per MV bus and period."),
    "battery_energy": (battery_energy, "Battery state of energy per community."),
    "mv_dispatch": (mv_dispatch, "MV dispatch stacked by source."),
    "voltages": (voltages, "Voltage envelopes at MV and LV: AC power flow (shaded, lowest to "
                           "highest bus) and LinDistFlow at the same injections (dashed)."),
    "violations": (violations, "AC voltage and loading violations per step."),
    "admm": (admm_residuals, "LDD-ADMM primal and dual residuals with their tolerances "
                             "(dotted) and the penalty ρ per iteration."),
}
