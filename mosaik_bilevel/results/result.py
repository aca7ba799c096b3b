"""Typed results of a solve and the tidy tables read from a solution.

A :class:`SolveResult` carries the scalars (status, costs, certificate, times, sizes) and
pandas tables with units in their column names. :meth:`SolveResult.summary` is the
JSON-ready set of scalars; :meth:`SolveResult.write` writes ``summary.json`` and one CSV per
table.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..model.formulation import Formulation
from ..model.linear import ModelSize

TABLES = ("exchanges", "dlmp", "mv_dispatch", "batteries", "rooftop_pv", "shiftable",
          "mv_voltage", "periods", "residuals", "deviation", "ac")


@dataclass(frozen=True)
class Certificate:
    """Outcome of the follower-optimality check of a single-level solution."""

    passed: bool
    follower_cost: float
    follower_cost_lp: float
    relative_error: float
    tolerance: float
    message: str

    def as_dict(self) -> dict:
        return {
            "passed": bool(self.passed),
            "follower_cost": _plain(self.follower_cost),
            "follower_cost_lp": _plain(self.follower_cost_lp),
            "relative_error": _plain(self.relative_error),
            "tolerance": float(self.tolerance),
            "message": self.message,
        }


def _plain(value: float):
    value = float(value)
    return value if np.isfinite(value) else None


@dataclass
class SolveResult:
    """Everything a solve returns. Costs are in the case's cost units over the horizon."""

    case: str
    method: str
    pricing: str
    start: str
    periods: int
    step_h: float
    status: str
    message: str
    leader_cost: float = math.nan
    follower_cost: float = math.nan
    own_cost: float = math.nan
    payments: float = math.nan
    system_cost: float = math.nan
    mip_gap: float = math.nan
    objective: float = math.nan
    certificate: Certificate | None = None
    times_s: dict = field(default_factory=dict)
    size: ModelSize | None = None
    big_m_log: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    exchanges: pd.DataFrame | None = None
    dlmp: pd.DataFrame | None = None
    mv_dispatch: pd.DataFrame | None = None
    batteries: pd.DataFrame | None = None
    rooftop_pv: pd.DataFrame | None = None
    shiftable: pd.DataFrame | None = None
    mv_voltage: pd.DataFrame | None = None
    periods_table: pd.DataFrame | None = None
    residuals: pd.DataFrame | None = None
    deviation: pd.DataFrame | None = None
    ac: pd.DataFrame | None = None  # AC validation per period (see :mod:`.validation`)

    @property
    def ok(self) -> bool:
        """True for an optimal solve (and, for ``exact``, a passed certificate)."""
        return self.status == "optimal" and (
            self.certificate is None or self.certificate.passed)

    @property
    def solve_time_s(self) -> float:
        return float(self.times_s.get("solve", math.nan))

    def summary(self) -> dict:
        """The result's scalars as plain JSON-ready values."""
        num = json_float
        out = {
            "case": self.case, "method": self.method, "pricing": self.pricing,
            "start": self.start, "periods": int(self.periods), "step_h": float(self.step_h),
            "status": self.status, "message": self.message,
            "leader_cost": num(self.leader_cost), "follower_cost": num(self.follower_cost),
            "communities_own_cost": num(self.own_cost), "payments": num(self.payments),
            "system_cost": num(self.system_cost), "mip_gap": num(self.mip_gap),
            "objective": num(self.objective),
            "certificate": self.certificate.as_dict() if self.certificate else None,
            "times_s": {k: num(v) for k, v in self.times_s.items()},
            "model_size": (None if self.size is None else {
                "variables": self.size.variables, "integers": self.size.integers,
                "constraints": self.size.constraints, "nonzeros": self.size.nonzeros}),
            "big_m_log": list(self.big_m_log),
        }
        out.update({k: (num(v) if isinstance(v, float) else v) for k, v in self.extra.items()})
        return out

    def tables(self) -> dict[str, pd.DataFrame]:
        """The result's tables by name (those that exist)."""
        out = {name: getattr(self, name) for name in TABLES if name != "periods"}
        out["periods"] = self.periods_table
        return {k: v for k, v in out.items() if v is not None}

    def write(self, folder) -> Path:
        """Write ``summary.json`` and one CSV per table into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "summary.json").write_text(json.dumps(self.summary(), indent=2,
                                                        allow_nan=False))
        for name, table in self.tables().items():
            table.to_csv(folder / f"{name}.csv", index=False)
        return folder

    def __repr__(self) -> str:
        cert = ("-" if self.certificate is None else
                ("passed" if self.certificate.passed else "FAILED"))
        return (f"SolveResult({self.method}/{self.pricing} on {self.case} from {self.start}: "
                f"{self.status}, leader {self.leader_cost:.6g}, follower "
                f"{self.follower_cost:.6g}, system {self.system_cost:.6g}, gap "
                f"{self.mip_gap:.2g}, certificate {cert}, solve {self.solve_time_s:.3g} s)")


def json_float(v) -> float | None:
    """A number as a JSON float: None for missing, NaN or infinite."""
    return float(v) if v is not None and np.isfinite(v) else None


def _long(values: np.ndarray, names: dict[str, pd.Index], column: str) -> pd.DataFrame:
    index = pd.MultiIndex.from_product(list(names.values()), names=list(names))
    return pd.DataFrame({column: np.asarray(values).ravel()}, index=index)


def marginal_resource(case, periods, root_price: np.ndarray) -> list[str]:
    """Which resource's cost equals the price at the substation bus, per period."""
    upstream = case.prices["upstream_per_mwh"].loc[periods].to_numpy()
    costs = [("upstream", upstream)]
    costs += [(str(n), np.full(len(periods), c))
              for n, c in case.generators["cost_per_mwh"].items()]
    costs += [(str(n), np.full(len(periods), c))
              for n, c in case.pv_plants["cost_per_mwh"].items()]
    labels = []
    for t, price in enumerate(root_price):
        hits = [name for name, cost in costs
                if abs(price - cost[t]) <= 1e-6 * max(1.0, abs(price))]
        labels.append("+".join(hits) if hits else "network")
    return labels


def dlmp_table(buses, periods, dlmp: np.ndarray, lp_dlmp: np.ndarray | None) -> pd.DataFrame:
    """DLMPs per bus and period: the settled one beside the follower LP's own dual."""
    time = pd.Index(periods, name="time")
    table = _long(dlmp, {"bus": pd.Index(buses, name="bus"), "time": time}, "dlmp_per_mwh")
    table["dlmp_lp_per_mwh"] = np.nan if lp_dlmp is None else lp_dlmp.ravel()
    table["deviation_per_mwh"] = table["dlmp_per_mwh"] - table["dlmp_lp_per_mwh"]
    return table.reset_index()


def exchange_table(names, mv_buses, periods, p_mw: np.ndarray, q_mvar: np.ndarray,
                   price: np.ndarray, step_h: float) -> pd.DataFrame:
    """Exchanges per community and period with their settlement."""
    time = pd.Index(periods, name="time")
    ex = _long(p_mw, {"community": pd.Index(names, name="community"), "time": time}, "p_mw")
    ex["q_mvar"] = np.asarray(q_mvar).ravel()
    ex["mv_bus"] = np.repeat(np.asarray(mv_buses), len(periods))
    ex["price_per_mwh"] = np.asarray(price).ravel()
    ex["payment"] = (np.asarray(price) * p_mw * step_h).ravel()
    return ex.reset_index()


def dispatch_tables(case, follower, values) -> tuple[pd.DataFrame, pd.DataFrame]:
    """MV dispatch (substation, units, PV plants) and MV voltages.

    ``values(block)`` gives the solution values of a follower block.
    """
    periods = follower.periods
    rows = []
    upstream = case.prices["upstream_per_mwh"].loc[periods].to_numpy()
    rows.append(pd.DataFrame({"unit": "substation", "kind": "upstream",
                              "bus": follower.mv.network.root, "time": periods,
                              "p_mw": values(follower.p_sub), "q_mvar": values(follower.q_sub),
                              "cost_per_mwh": upstream}))
    for block_p, block_q, table, kind in (
            (follower.p_gen, follower.q_gen, case.generators, "conventional"),
            (follower.p_pv, None, case.pv_plants, "pv")):
        vp = values(block_p)
        vq = values(block_q) if block_q is not None else np.zeros_like(vp)
        for i, name in enumerate(table.index):
            rows.append(pd.DataFrame({
                "unit": name, "kind": kind, "bus": int(table["bus"].iloc[i]), "time": periods,
                "p_mw": vp[i], "q_mvar": vq[i],
                "cost_per_mwh": float(table["cost_per_mwh"].iloc[i])}))
    disp = pd.concat(rows, ignore_index=True)
    if len(case.pv_plants):
        avail = case.pv_plant_availability_pu.loc[periods] * case.pv_plants["p_peak_mw"]
        disp["available_mw"] = np.nan
        for name in case.pv_plants.index:
            mask = (disp["unit"] == name) & (disp["kind"] == "pv")
            disp.loc[mask, "available_mw"] = avail[name].to_numpy()
    w = values(follower.mv.w)
    vm = np.vstack([np.full(len(periods), follower.mv.w_root), w])
    voltage = _long(np.sqrt(np.maximum(vm, 0)),
                    {"bus": pd.Index(follower.mv.network.buses, name="bus"),
                     "time": pd.Index(periods, name="time")}, "vm_pu").reset_index()
    return disp, voltage


def periods_table(case, periods, dlmp, lp_dlmp, p_ex: np.ndarray,
                  p_sub: np.ndarray | None) -> pd.DataFrame:
    """Per period: who sets the price, how far the settled price is from the LP's own."""
    per = pd.DataFrame({"time": periods})
    if dlmp is not None:
        per["root_price_per_mwh"] = dlmp[0]
        per["marginal_resource"] = marginal_resource(case, periods, dlmp[0])
        if lp_dlmp is not None:
            dev = np.abs(dlmp - lp_dlmp).max(axis=0)
            per["root_price_lp_per_mwh"] = lp_dlmp[0]
            per["max_price_deviation_per_mwh"] = dev
            per["price_differs_from_lp"] = dev > 1e-6 * np.maximum(
                1.0, np.abs(lp_dlmp).max(axis=0))
    per["exchange_total_mw"] = p_ex.sum(axis=0)
    if p_sub is not None:
        per["substation_p_mw"] = p_sub
    return per


def read_tables(form: Formulation, x: np.ndarray, response,
                prices_per_mwh: np.ndarray | None) -> dict[str, pd.DataFrame]:
    """Tidy tables of a solution.

    Parameters
    ----------
    x
        The host model's solution.
    response
        The follower's own LP at the solution's exchanges (its dispatch is used when the
        follower is not part of the host model, and its duals are the LP DLMPs).
    prices_per_mwh
        The bilevel's DLMPs (bus × period) where the method has them (``exact``), else None.
    """
    case, periods = form.case, form.periods
    f = form.follower
    out: dict[str, pd.DataFrame] = {}

    def follower_values(block):
        ids = form.follower_ids(block)
        if ids is not None:
            return x[ids]
        return None if response is None or response.x is None else response.x[block.ids]

    lp_dlmp = None if response is None or response.dlmp is None else response.dlmp.to_numpy()
    dlmp = prices_per_mwh if prices_per_mwh is not None else lp_dlmp
    if dlmp is not None:
        out["dlmp"] = dlmp_table(f.mv.network.buses, periods, dlmp, lp_dlmp)

    names = [c.community.name for c in form.communities]
    buses = [c.community.mv_bus for c in form.communities]
    p_ex = form.exchanges(x)
    q_ex = np.vstack([c.community.q_exchange_mvar.loc[periods].to_numpy()
                      for c in form.communities])
    out["exchanges"] = exchange_table(names, buses, periods, p_ex, q_ex,
                                      settlement_prices(case, form.pricing, periods, p_ex,
                                                        dlmp, f, buses), case.step_h)

    p_sub = follower_values(f.p_sub)
    if p_sub is not None:
        out["mv_dispatch"], out["mv_voltage"] = dispatch_tables(case, f, follower_values)

    bat, pv, sh = [], [], []
    for c in form.communities:
        b, p, s_ = community_tables(c, x)
        bat += b
        pv += p
        sh += s_
    for key, parts in (("batteries", bat), ("rooftop_pv", pv), ("shiftable", sh)):
        if parts:
            out[key] = pd.concat(parts, ignore_index=True)
    out["periods"] = periods_table(case, periods, dlmp, lp_dlmp, p_ex, p_sub)
    return out


def settlement_prices(case, pricing, periods, p_ex, dlmp, follower, buses) -> np.ndarray:
    """The price each exchange is settled at (per MWh): tariff or DLMP at its bus."""
    if pricing == "tariff":
        buy = case.prices["tariff_buy_per_mwh"].loc[periods].to_numpy()
        sell = case.prices["tariff_sell_per_mwh"].loc[periods].to_numpy()
        return np.where(p_ex >= 0, buy[None, :], sell[None, :])
    if dlmp is not None:
        return dlmp[follower.mv.network.position.loc[list(buses)].to_numpy()]
    return np.full_like(p_ex, np.nan)


def community_tables(c, x: np.ndarray):
    """Battery, rooftop-PV and shiftable-load tables of one community's blocks."""
    name = c.community.name
    time = pd.Index(c.periods, name="time")
    bat, pv, sh = [], [], []
    if c.e is not None:
        idx = {"battery": pd.Index(c.community.batteries.index, name="battery"), "time": time}
        t = _long(x[c.p_ch.ids], idx, "p_ch_mw")
        t["p_dis_mw"] = x[c.p_dis.ids].ravel()
        t["e_mwh"] = x[c.e.ids].ravel()
        t["charging"] = np.round(x[c.z.ids]).astype(int).ravel()
        t.insert(0, "community", name)
        bat.append(t.reset_index())
    if c.p_pv is not None:
        idx = {"unit": pd.Index(c.community.pv.index, name="unit"), "time": time}
        t = _long(x[c.p_pv.ids], idx, "p_mw")
        t["available_mw"] = c.community.pv_available_mw.loc[c.periods].to_numpy().T.ravel()
        t.insert(0, "community", name)
        pv.append(t.reset_index())
    if c.on is not None:
        idx = {"load": pd.Index(c.community.shiftable.index, name="load"), "time": time}
        on = np.round(x[c.on.ids]).astype(int)
        t = _long(on, idx, "on")
        t["p_mw"] = (on * c.community.shiftable[["p_mw"]].to_numpy()).ravel()
        t.insert(0, "community", name)
        sh.append(t.reset_index())
    return bat, pv, sh
