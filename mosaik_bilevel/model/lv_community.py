"""One LV energy community in a model: its devices, its feeder and its own cost (model.md §4).

:func:`add_community` adds, for one community and one horizon, the battery, PV and
shiftable-load variables and constraints, LinDistFlow on its LV feeder (reactive flows are
data: members' reactive demand, PV and batteries at unity power factor) and the exchange
``p_ex`` at the MV bus (import positive) within the transformer's polygon. The community's
own cost (battery wear and curtailment) goes into the model's objective; payments for the
exchange are the caller's (they depend on the pricing mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.case import Case, Community, CommunitySettings
from .lindistflow import LinDistFlow, Withdrawals, add_lindistflow, polygon_p_bounds
from .linear import Constraints, LinearModel, Variables


@dataclass(frozen=True)
class CommunityBlocks:
    """The blocks one community added to a model."""

    community: Community
    periods: pd.Index
    lv: LinDistFlow
    p_ex: Variables
    p_pv: Variables | None
    p_ch: Variables | None
    p_dis: Variables | None
    e: Variables | None
    z: Variables | None
    on: Variables | None
    energy_balance: Constraints | None
    own_cost_cols: np.ndarray
    own_cost_coefs: np.ndarray
    own_cost_offset: float
    step_h: float = 1.0
    battery_wear_per_mwh: float = 0.0
    curtailment_per_mwh: float = 0.0

    def own_cost(self, x: np.ndarray) -> float:
        """Battery wear plus curtailment cost at solution ``x``."""
        return float(self.own_cost_coefs @ x[self.own_cost_cols] + self.own_cost_offset)

    def own_cost_terms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Own cost per period as linear terms: ``(cols, coefs, offset)``.

        Period t costs ``coefs[:, t] · x[cols[:, t]] + offset[t]``.
        """
        cols, coefs = [], []
        offset = np.zeros(len(self.periods))
        if self.p_ch is not None:
            for block in (self.p_ch, self.p_dis):
                cols.append(block.ids)
                coefs.append(np.full(block.ids.shape, self.step_h * self.battery_wear_per_mwh))
        if self.p_pv is not None:
            avail = self.community.pv_available_mw.loc[self.periods].to_numpy().T
            cols.append(self.p_pv.ids)
            coefs.append(np.full(self.p_pv.ids.shape, -self.step_h * self.curtailment_per_mwh))
            offset += self.step_h * self.curtailment_per_mwh * avail.sum(axis=0)
        if not cols:
            return (np.zeros((0, len(self.periods)), dtype=np.int64),
                    np.zeros((0, len(self.periods))), offset)
        return np.vstack(cols), np.vstack(coefs), offset

    def own_cost_by_period(self, x: np.ndarray) -> np.ndarray:
        """The same per period."""
        cost = np.zeros(len(self.periods))
        if self.p_ch is not None:
            cost += self.step_h * self.battery_wear_per_mwh * (
                x[self.p_ch.ids] + x[self.p_dis.ids]).sum(axis=0)
        if self.p_pv is not None:
            avail = self.community.pv_available_mw.loc[self.periods].to_numpy().T
            cost += self.step_h * self.curtailment_per_mwh * (avail - x[self.p_pv.ids]).sum(
                axis=0)
        return cost


def _bus_sum(table: pd.DataFrame, values: np.ndarray, positions: pd.Series, n_bus: int):
    """Sum per-element rows of ``values`` (elements × T) onto bus positions."""
    out = np.zeros((n_bus, values.shape[1]))
    if len(table):
        np.add.at(out, positions.loc[table["bus"]].to_numpy(), values)
    return out


def settings_of(case: Case | CommunitySettings) -> CommunitySettings:
    """The public community settings of a case (or the settings themselves)."""
    return case if isinstance(case, CommunitySettings) else case.community_settings


def exchange_range(community: Community) -> tuple[float, float]:
    """Bounds on the exchange (MW, import positive) valid over the community's whole timeline."""
    c = community
    load = c.member_p_mw.sum(axis=1)
    pv_max = float((c.pv_availability_pu.max(axis=0) * c.pv["p_peak_mw"]).sum()) if len(
        c.pv) else 0.0
    lo = float(load.min()) - pv_max - float(c.batteries["p_dis_max_mw"].sum())
    hi = (float(load.max()) + float(c.batteries["p_ch_max_mw"].sum())
          + float(c.shiftable["p_mw"].sum()))
    s = c.s_max_mva
    return max(lo, -s), min(hi, s)


def add_community(
    model: LinearModel,
    case: Case | CommunitySettings,
    community: Community,
    periods: pd.DatetimeIndex,
    *,
    name: str,
    initial_energy_mwh: pd.Series | None = None,
    shiftable_done: pd.Series | None = None,
) -> CommunityBlocks:
    """Add one community over ``periods`` to ``model`` (see the module docstring).

    Parameters
    ----------
    case
        The case, or only the public :class:`CommunitySettings` (all a community needs).
    periods
        Consecutive periods of the case, from any period and of any length.
    initial_energy_mwh
        Measured battery states at the horizon start (default: the case's ``e_init_mwh``).
    shiftable_done
        Periods each shiftable load has run so far in the cycle the horizon starts in
        (measured; used when the horizon starts inside a cycle, see
        :meth:`~mosaik_bilevel.data.case.CommunitySettings.shiftable_requirements`).
    """
    c = community
    dt = case.step_h
    nt = len(periods)
    lv = c.lv_network
    pos = lv.position
    n_bus = lv.n_buses

    member_p = c.member_p_mw.loc[periods].to_numpy().T
    member_q = c.member_q_mvar.loc[periods].to_numpy().T
    load_p = _bus_sum(c.members, member_p, pos, n_bus)
    load_q = _bus_sum(c.members, member_q, pos, n_bus)
    # withdrawal ranges over the whole timeline (day-invariant model structure)
    env_lo = _bus_sum(c.members, c.member_p_mw.min(axis=0).to_numpy()[:, None], pos, n_bus)
    env_hi = _bus_sum(c.members, c.member_p_mw.max(axis=0).to_numpy()[:, None], pos, n_bus)
    pv_max = (c.pv_availability_pu.max(axis=0) * c.pv["p_peak_mw"]).to_numpy()[:, None] if len(
        c.pv) else np.zeros((0, 1))
    env_lo = env_lo - _bus_sum(c.pv, pv_max, pos, n_bus) - _bus_sum(
        c.batteries, c.batteries[["p_dis_max_mw"]].to_numpy(), pos, n_bus)
    env_hi = env_hi + _bus_sum(c.batteries, c.batteries[["p_ch_max_mw"]].to_numpy(), pos,
                               n_bus) + _bus_sum(c.shiftable, c.shiftable[["p_mw"]].to_numpy(),
                                                 pos, n_bus)
    ones = np.ones((1, nt))
    withdrawals = Withdrawals(load_p, load_q, (env_lo * ones, env_hi * ones), (load_q, load_q))
    ldf = add_lindistflow(model, lv, periods, withdrawals, name=f"{name}.lv",
                          reactive_fixed=True, vm_set_pu=c.vm_set_pu,
                          polygon_sides=case.polygon_sides)

    cost_cols: list[np.ndarray] = []
    cost_coefs: list[np.ndarray] = []
    offset = 0.0

    # exchange at the transformer: import positive, inside the polygon given q_ex (data)
    q_ex = c.q_exchange_mvar.loc[periods].to_numpy()[None, :]
    lo, hi = polygon_p_bounds(np.array([c.s_max_mva]), q_ex, case.polygon_sides)
    rng = exchange_range(c)
    p_ex = model.add_variables(f"{name}.p_ex_mw", (periods,), lo[0], hi[0],
                               implied_lower=rng[0], implied_upper=rng[1])
    model.add_terms(ldf.p_balance.ids[0], p_ex.ids, 1.0)

    p_pv = None
    if len(c.pv):
        avail = c.pv_available_mw.loc[periods].to_numpy().T
        p_pv = model.add_variables(f"{name}.p_pv_mw", (c.pv.index, periods), 0.0, avail)
        model.add_terms(ldf.balance_rows(c.pv["bus"]), p_pv.ids, 1.0)
        if case.curtailment_per_mwh:
            cost_cols.append(p_pv.ids.ravel())
            cost_coefs.append(np.full(p_pv.size, -dt * case.curtailment_per_mwh))
            offset += dt * case.curtailment_per_mwh * float(avail.sum())

    p_ch = p_dis = e = z = balance = None
    b = c.batteries
    if len(b):
        idx = b.index
        e0 = b["e_init_mwh"] if initial_energy_mwh is None else initial_energy_mwh.loc[idx]
        e0 = e0.to_numpy(dtype=float)
        p_ch = model.add_variables(f"{name}.p_ch_mw", (idx, periods), 0.0,
                                   b[["p_ch_max_mw"]].to_numpy())
        p_dis = model.add_variables(f"{name}.p_dis_mw", (idx, periods), 0.0,
                                    b[["p_dis_max_mw"]].to_numpy())
        e_lo = np.repeat(b[["e_min_mwh"]].to_numpy(), nt, axis=1)
        # the end target, or as close as full charging gets from e0 (a short horizon late
        # in a rolling run may not reach it; the target must not make the clearing fail)
        reach = e0 + nt * dt * (b["eta_ch"] * b["p_ch_max_mw"]).to_numpy()
        e_lo[:, -1] = np.maximum(e_lo[:, -1], np.minimum(b["e_end_mwh"].to_numpy(), reach))
        e = model.add_variables(f"{name}.e_mwh", (idx, periods), e_lo,
                                b[["e_max_mwh"]].to_numpy())
        z = model.add_variables(f"{name}.z_charge", (idx, periods), 0.0, 1.0, integer=True)
        rhs = np.zeros((len(b), nt))
        rhs[:, 0] = e0
        balance = model.add_constraints(f"{name}.energy_balance", (idx, periods), "==", rhs)
        model.add_terms(balance.ids, e.ids, 1.0)
        model.add_terms(balance.ids[:, 1:], e.ids[:, :-1], -1.0)
        model.add_terms(balance.ids, p_ch.ids, -dt * b[["eta_ch"]].to_numpy())
        model.add_terms(balance.ids, p_dis.ids, dt / b[["eta_dis"]].to_numpy())
        mode_ch = model.add_constraints(f"{name}.charge_mode", (idx, periods), "<=", 0.0)
        model.add_terms(mode_ch.ids, p_ch.ids, 1.0)
        model.add_terms(mode_ch.ids, z.ids, -b[["p_ch_max_mw"]].to_numpy())
        mode_dis = model.add_constraints(f"{name}.discharge_mode", (idx, periods), "<=",
                                         b[["p_dis_max_mw"]].to_numpy())
        model.add_terms(mode_dis.ids, p_dis.ids, 1.0)
        model.add_terms(mode_dis.ids, z.ids, b[["p_dis_max_mw"]].to_numpy())
        rows = ldf.balance_rows(b["bus"])
        model.add_terms(rows, p_dis.ids, 1.0)
        model.add_terms(rows, p_ch.ids, -1.0)
        if case.battery_wear_per_mwh:
            for block in (p_ch, p_dis):
                cost_cols.append(block.ids.ravel())
                cost_coefs.append(np.full(block.size, dt * case.battery_wear_per_mwh))

    on = None
    s = c.shiftable
    if len(s):
        first = c.member_p_mw.index.get_loc(periods[0])  # cycles count from the case's first
        need = settings_of(case).shiftable_requirements(s, first, nt, shiftable_done)
        on = model.add_variables(f"{name}.on", (s.index, periods), 0.0,
                                 need.mask.astype(float), integer=True)
        occurrences = pd.RangeIndex(need.lower.shape[1], name="occurrence")
        count = model.add_constraints(f"{name}.on_periods", (s.index, occurrences), "range",
                                      (need.lower, need.upper))
        model.add_terms(count.ids[:, need.occurrence], on.ids, 1.0)
        model.add_terms(ldf.balance_rows(s["bus"]), on.ids, -s[["p_mw"]].to_numpy())

    cols = np.concatenate(cost_cols) if cost_cols else np.zeros(0, np.int64)
    coefs = np.concatenate(cost_coefs) if cost_coefs else np.zeros(0)
    model.add_objective(cols, coefs)
    model.objective_offset += offset
    return CommunityBlocks(
        community=c, periods=periods, lv=ldf, p_ex=p_ex, p_pv=p_pv, p_ch=p_ch, p_dis=p_dis,
        e=e, z=z, on=on, energy_balance=balance, own_cost_cols=cols, own_cost_coefs=coefs,
        own_cost_offset=offset, step_h=dt, battery_wear_per_mwh=case.battery_wear_per_mwh,
        curtailment_per_mwh=case.curtailment_per_mwh,
    )
