"""The one assembler of a solution's frames, used by every method.

A method hands over what it found (the exchanges, the follower's dispatch, the prices and,
where it has them, the communities' device schedules); :func:`fill_solution` settles the
exchanges, builds the wide frames of :class:`~mosaik_bilevel.results.result.SolveResult`
and the per-period table (which resource sets the price, how far the settled price is from
the follower LP's own dual).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ..data.case import Case
from ..model.follower import Follower
from ..model.linear import Variables
from ..model.lv_community import CommunityBlocks
from ..model.tariff import tariff_prices
from .result import SolveResult
from .tables import MVDispatch, _long, wide


def fill_solution(result: SolveResult, case: Case, periods: pd.DatetimeIndex, *,
                  names, mv_buses, p_ex: np.ndarray, q_ex: np.ndarray, follower: Follower,
                  follower_values: Callable[[Variables], np.ndarray | None],
                  dlmp: np.ndarray | None, lp_dlmp: np.ndarray | None,
                  communities: list[CommunityBlocks] | None = None,
                  x: np.ndarray | None = None) -> SolveResult:
    """Fill ``result``'s solution frames and tables.

    Parameters
    ----------
    names, mv_buses
        The communities and their MV buses.
    p_ex, q_ex
        Their active and reactive exchanges (community × period; MW, Mvar; import +).
    follower, follower_values
        The follower's model and the values of one of its blocks (None when the method has
        no follower dispatch).
    dlmp, lp_dlmp
        The settled DLMPs and the follower LP's own (MV bus × period, per MWh) or None.
    communities, x
        The communities' blocks and the solution they are read from (device tables), when
        the method holds them.
    """
    result.exchange_p_mw = wide(p_ex, periods, names, "community")
    result.exchange_q_mvar = wide(q_ex, periods, names, "community")
    price = settlement_prices(case, result.pricing, periods, p_ex, dlmp, follower, mv_buses)
    result.price_per_mwh = wide(price, periods, names, "community")
    result.community_bus = pd.Series(np.asarray(mv_buses, dtype=int),
                                     index=pd.Index(list(names), name="community"))
    buses = follower.mv.network.buses
    if dlmp is not None:
        result.dlmp_per_mwh = wide(dlmp, periods, buses, "bus")
        result.dlmp_lp_per_mwh = (None if lp_dlmp is None
                                  else wide(lp_dlmp, periods, buses, "bus"))
    p_sub = follower_values(follower.p_sub)
    if p_sub is not None:
        result.mv = mv_dispatch(case, follower, follower_values)
        result.transformers = transformer_table(case, result.mv.vm_pu, result.exchange_p_mw,
                                                result.exchange_q_mvar)
    if communities is not None and x is not None:
        result.batteries, result.rooftop_pv, result.shiftable = device_tables(communities, x)
    result.periods_table = periods_table(case, periods, dlmp, lp_dlmp, p_ex, p_sub)
    return result


def transformer_table(case: Case, vm_mv_pu: pd.DataFrame, p_ex_mw: pd.DataFrame,
                      q_ex_mvar: pd.DataFrame) -> pd.DataFrame:
    """Per community and period (long): the transformer model, the MV voltage the dispatch
    gives its bus (LinDistFlow), the tap (``fixed``: the data's; ``regulated``: the one that
    holds the LV root at ``vm_set_pu``,
    :meth:`~mosaik_bilevel.data.transformer.TransformerLink.implied_tap`), whether
    that tap lies within the transformer's range, and the LV root's voltage."""
    rows = []
    for c in case.communities:
        if c.name not in p_ex_mw:
            continue
        link = c.transformer_link
        vm_mv = vm_mv_pu[c.mv_bus].to_numpy(dtype=float)
        p, q = p_ex_mw[c.name].to_numpy(float), q_ex_mvar[c.name].to_numpy(float)
        if c.transformer_model == "fixed":
            tap = np.full(len(vm_mv), link.tap_pos)
            vm_lv = np.sqrt(np.maximum(link.lv_voltage_sq(vm_mv ** 2, p, q), 0.0))
        else:
            tap = link.implied_tap(vm_mv ** 2, p, q, c.vm_set_pu)
            vm_lv = np.full(len(vm_mv), c.vm_set_pu)
        within = (~np.isfinite(tap) & (link.tap_step_percent == 0)) | (
            (tap >= link.tap_min - 1e-9) & (tap <= link.tap_max + 1e-9))
        rows.append(pd.DataFrame({
            "community": c.name, "time": vm_mv_pu.index, "model": c.transformer_model,
            "vm_mv_pu": vm_mv, "tap_pos": tap, "tap_min": link.tap_min,
            "tap_max": link.tap_max, "tap_in_range": within, "vm_lv_root_pu": vm_lv}))
    return pd.concat(rows, ignore_index=True) if rows else None


def settlement_prices(case: Case, pricing: str, periods, p_ex: np.ndarray,
                      dlmp: np.ndarray | None, follower: Follower, buses) -> np.ndarray:
    """The price each exchange is settled at (per MWh): tariff or DLMP at its bus."""
    if pricing == "tariff":
        return tariff_prices(case.prices, periods, p_ex)
    if dlmp is not None:
        return dlmp[follower.mv.network.position.loc[list(buses)].to_numpy()]
    return np.full_like(p_ex, np.nan)


def mv_dispatch(case: Case, follower: Follower,
                values: Callable[[Variables], np.ndarray]) -> MVDispatch:
    """The follower's dispatch and LinDistFlow voltages from its blocks' values."""
    periods = follower.periods
    g, s = case.generators, case.pv_plants
    units = pd.concat([g[["bus", "cost_per_mwh"]].assign(kind="conventional"),
                       s[["bus", "cost_per_mwh"]].assign(kind="pv")])
    units.index.name = "unit"
    network = follower.mv.network
    return MVDispatch(
        p_sub_mw=pd.Series(values(follower.p_sub), index=pd.Index(periods, name="time")),
        q_sub_mvar=pd.Series(values(follower.q_sub), index=pd.Index(periods, name="time")),
        p_gen_mw=wide(values(follower.p_gen), periods, g.index, "unit"),
        q_gen_mvar=wide(values(follower.q_gen), periods, g.index, "unit"),
        p_pv_mw=wide(values(follower.p_pv), periods, s.index, "unit"),
        pv_available_mw=wide((case.pv_plant_availability_pu.loc[periods]
                              * s["p_peak_mw"]).to_numpy().T, periods, s.index, "unit"),
        vm_pu=wide(follower.mv.voltages_pu(values(follower.mv.w)), periods,
                   network.buses, "bus"),
        units=units, root_bus=int(network.root),
        upstream_per_mwh=pd.Series(case.prices["upstream_per_mwh"].loc[periods].to_numpy(),
                                   index=pd.Index(periods, name="time")))


def marginal_resource(case: Case, periods, root_price: np.ndarray) -> list[str]:
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


def periods_table(case: Case, periods, dlmp, lp_dlmp, p_ex: np.ndarray,
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


def device_tables(communities: list[CommunityBlocks], x: np.ndarray):
    """Battery, rooftop-PV and shiftable-load tables of the communities (None if none)."""
    bat, pv, sh = [], [], []
    for c in communities:
        name = c.community.name
        time = pd.Index(c.periods, name="time")
        if c.e is not None:
            idx = {"battery": pd.Index(c.community.batteries.index, name="battery"),
                   "time": time}
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
    return tuple(pd.concat(parts, ignore_index=True) if parts else None
                 for parts in (bat, pv, sh))
