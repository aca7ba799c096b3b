"""One LV energy community in a model: its devices, its feeder and its own cost (model.md §4).

:func:`add_community` adds, for one community and one horizon, the battery, PV and
shiftable-load variables and constraints, LinDistFlow on its LV feeder (reactive flows are
data: members' reactive demand, PV and batteries at unity power factor) and the exchange
``p_ex`` at the MV bus (import positive) within the transformer's polygon. The community's
own cost (battery wear and curtailment) goes into the model's objective; payments for the
exchange are the caller's (they depend on the pricing mode).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..data.case import Case, Community, CommunitySettings
from .lindistflow import LinDistFlow, Withdrawals, add_lindistflow, polygon_p_bounds
from .linear import Constraints, LinearModel, Variables
from .shiftable import shiftable_requirements


@dataclass(frozen=True)
class CommunityBlocks:
    """The blocks one community added to a model.

    The community's own cost (battery wear, curtailment) is kept once, as linear terms per
    period: period t costs ``own_cost_coefs[:, t] · x[own_cost_cols[:, t]] +
    own_cost_offset[t]``; the model's objective holds the same terms.
    """

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
    own_cost_offset: np.ndarray
    #: fixed transformer model only: the squared voltage of the MV bus (per period) that the
    #: community's LV root follows; the caller ties it to the MV side (or fixes it)
    w_mv: Variables | None = None

    def own_cost_terms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Own cost per period as linear terms: ``(cols, coefs, offset)`` (class docstring)."""
        return self.own_cost_cols, self.own_cost_coefs, self.own_cost_offset

    def own_cost_by_period(self, x: np.ndarray) -> np.ndarray:
        """Battery wear plus curtailment cost per period at solution ``x``."""
        return (self.own_cost_coefs * x[self.own_cost_cols]).sum(axis=0) + self.own_cost_offset

    def own_cost(self, x: np.ndarray) -> float:
        """Battery wear plus curtailment cost over the horizon at solution ``x``."""
        return float(self.own_cost_by_period(x).sum())


@dataclass
class _OwnCost:
    """Own-cost terms as they are added, per period (see :class:`CommunityBlocks`)."""

    n_periods: int
    cols: list[np.ndarray] = field(default_factory=list)
    coefs: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self):
        self.offset = np.zeros(self.n_periods)

    def add(self, block: Variables, cost: float, offset: np.ndarray | None = None) -> None:
        """``cost`` per unit of every column of ``block`` (elements × periods)."""
        self.cols.append(block.ids)
        self.coefs.append(np.full(block.ids.shape, cost))
        if offset is not None:
            self.offset += offset

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.cols:
            return (np.zeros((0, self.n_periods), dtype=np.int64),
                    np.zeros((0, self.n_periods)), self.offset)
        return np.vstack(self.cols), np.vstack(self.coefs), self.offset


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
    vm_min_pu: np.ndarray | None = None,
    s_max_factor: np.ndarray | None = None,
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
        :func:`~mosaik_bilevel.model.shiftable.shiftable_requirements`).
    vm_min_pu
        Lower voltage bound per LV bus and period (buses × periods; default the feeder's
        band), e.g. tightened by an AC correction.
    s_max_factor
        Factor on the transformer's rating per period (default 1), e.g. from an AC
        correction.
    """
    settings = settings_of(case)
    c = community
    fixed = c.transformer_model == "fixed"
    ldf = add_lindistflow(model, c.lv_network, periods, _withdrawals(c, periods),
                          name=f"{name}.lv", reactive_fixed=True, vm_set_pu=c.vm_set_pu,
                          vm_min_pu=vm_min_pu,
                          polygon_sides=settings.polygon_sides, root_variable=fixed)
    own = _OwnCost(len(periods))
    p_ex = _exchange(model, settings, c, periods, ldf, name, s_max_factor)
    w_mv = _fixed_transformer(model, c, periods, ldf, p_ex, name) if fixed else None
    p_pv = _rooftop_pv(model, settings, c, periods, ldf, name, own)
    battery = _batteries(model, settings, c, periods, ldf, name, own, initial_energy_mwh)
    on = _shiftable(model, settings, c, periods, ldf, name, shiftable_done)
    cols, coefs, offset = own.arrays()
    model.add_objective(cols, coefs)
    model.objective_offset += float(offset.sum())
    return CommunityBlocks(
        community=c, periods=periods, lv=ldf, p_ex=p_ex, p_pv=p_pv, **battery, on=on,
        own_cost_cols=cols, own_cost_coefs=coefs, own_cost_offset=offset, w_mv=w_mv)


#: Range of the MV bus's squared voltage a community's model admits (the MV side bounds it).
W_MV_RANGE = (0.5 ** 2, 1.5 ** 2)


def _fixed_transformer(model: LinearModel, c: Community, periods, ldf: LinDistFlow,
                       p_ex: Variables, name: str) -> Variables:
    """``w_root = w_mv / n² − 2 (r p_ex + x q_ex)``: the LV root follows the MV bus through
    the fixed-tap transformer (:mod:`mosaik_bilevel.data.transformer`)."""
    link = c.transformer_link
    q_ex = c.q_exchange_mvar.loc[periods].to_numpy()
    w_mv = model.add_variables(f"{name}.w_mv_pu2", (periods,), *W_MV_RANGE)
    row = model.add_constraints(f"{name}.transformer", (periods,), "==",
                                -2.0 * link.x_pu * q_ex)
    model.add_terms(row.ids, ldf.w_root_var.ids, 1.0)
    model.add_terms(row.ids, w_mv.ids, -1.0 / link.ratio() ** 2)
    model.add_terms(row.ids, p_ex.ids, 2.0 * link.r_pu)
    return w_mv


def _withdrawals(c: Community, periods: pd.DatetimeIndex) -> Withdrawals:
    """Members' withdrawals per LV bus (data) and the range of the total withdrawal."""
    lv = c.lv_network
    pos, n_bus, nt = lv.position, lv.n_buses, len(periods)
    load_p = _bus_sum(c.members, c.member_p_mw.loc[periods].to_numpy().T, pos, n_bus)
    load_q = _bus_sum(c.members, c.member_q_mvar.loc[periods].to_numpy().T, pos, n_bus)
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
    return Withdrawals(load_p, load_q, (env_lo * ones, env_hi * ones), (load_q, load_q))


def _exchange(model: LinearModel, settings: CommunitySettings, c: Community, periods,
              ldf: LinDistFlow, name: str, s_max_factor: np.ndarray | None = None
              ) -> Variables:
    """The exchange at the transformer: import positive, inside the polygon given q_ex."""
    q_ex = c.q_exchange_mvar.loc[periods].to_numpy()[None, :]
    lo, hi = polygon_p_bounds(np.array([c.s_max_mva]), q_ex, settings.polygon_sides)
    if s_max_factor is not None:  # the polygon scales with the rating (q_ex is data)
        lo_s, hi_s = polygon_p_bounds(c.s_max_mva * np.asarray(s_max_factor, dtype=float),
                                      q_ex.T, settings.polygon_sides)
        lo, hi = np.maximum(lo, lo_s.T), np.minimum(hi, hi_s.T)
    rng = exchange_range(c)
    p_ex = model.add_variables(f"{name}.p_ex_mw", (periods,), lo[0], hi[0],
                               implied_lower=rng[0], implied_upper=rng[1])
    model.add_terms(ldf.p_balance.ids[0], p_ex.ids, 1.0)
    return p_ex


def _rooftop_pv(model: LinearModel, settings: CommunitySettings, c: Community, periods,
                ldf: LinDistFlow, name: str, own: _OwnCost) -> Variables | None:
    """Rooftop PV up to what is available; curtailment costs what is left unused."""
    if not len(c.pv):
        return None
    avail = c.pv_available_mw.loc[periods].to_numpy().T
    p_pv = model.add_variables(f"{name}.p_pv_mw", (c.pv.index, periods), 0.0, avail)
    model.add_terms(ldf.balance_rows(c.pv["bus"]), p_pv.ids, 1.0)
    rate = settings.step_h * settings.curtailment_per_mwh
    own.add(p_pv, -rate, rate * avail.sum(axis=0))
    return p_pv


def _batteries(model: LinearModel, settings: CommunitySettings, c: Community, periods,
               ldf: LinDistFlow, name: str, own: _OwnCost,
               initial_energy_mwh: pd.Series | None) -> dict:
    """Batteries: energy balance, one mode per period, wear on what goes through them."""
    none = {"p_ch": None, "p_dis": None, "e": None, "z": None, "energy_balance": None}
    b = c.batteries
    if not len(b):
        return none
    dt, nt, idx = settings.step_h, len(periods), b.index
    e0 = b["e_init_mwh"] if initial_energy_mwh is None else initial_energy_mwh.loc[idx]
    e0 = e0.to_numpy(dtype=float)
    p_ch = model.add_variables(f"{name}.p_ch_mw", (idx, periods), 0.0,
                               b[["p_ch_max_mw"]].to_numpy())
    p_dis = model.add_variables(f"{name}.p_dis_mw", (idx, periods), 0.0,
                                b[["p_dis_max_mw"]].to_numpy())
    e_lo = np.repeat(b[["e_min_mwh"]].to_numpy(), nt, axis=1)
    # the end target, or as close as full charging gets from e0 (a short horizon late in a
    # rolling run may not reach it; the target must not make the clearing fail)
    reach = e0 + nt * dt * (b["eta_ch"] * b["p_ch_max_mw"]).to_numpy()
    e_lo[:, -1] = np.maximum(e_lo[:, -1], np.minimum(b["e_end_mwh"].to_numpy(), reach))
    e = model.add_variables(f"{name}.e_mwh", (idx, periods), e_lo, b[["e_max_mwh"]].to_numpy())
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
    for block in (p_ch, p_dis):
        own.add(block, dt * settings.battery_wear_per_mwh)
    return {"p_ch": p_ch, "p_dis": p_dis, "e": e, "z": z, "energy_balance": balance}


def _shiftable(model: LinearModel, settings: CommunitySettings, c: Community, periods,
               ldf: LinDistFlow, name: str, shiftable_done) -> Variables | None:
    """Shiftable loads: on in whole periods inside their window, as often as their cycle
    needs (:func:`~mosaik_bilevel.model.shiftable.shiftable_requirements`)."""
    s = c.shiftable
    if not len(s):
        return None
    first = c.member_p_mw.index.get_loc(periods[0])  # cycles count from the case's first
    need = shiftable_requirements(settings, s, first, len(periods), shiftable_done)
    on = model.add_variables(f"{name}.on", (s.index, periods), 0.0,
                             need.mask.astype(float), integer=True)
    occurrences = pd.RangeIndex(need.lower.shape[1], name="occurrence")
    count = model.add_constraints(f"{name}.on_periods", (s.index, occurrences), "range",
                                  (need.lower, need.upper))
    model.add_terms(count.ids[:, need.occurrence], on.ids, 1.0)
    model.add_terms(ldf.balance_rows(s["bus"]), on.ids, -s[["p_mw"]].to_numpy())
    return on
