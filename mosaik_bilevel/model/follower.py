"""The follower: the MV network's economic dispatch, an LP parametric in the exchanges (§3).

:func:`build_follower` writes the follower for one horizon as a :class:`LinearModel` whose
``p_ex`` block (community × period) is a *parameter* block: fixing it and solving gives the
follower's response and its DLMPs (the active-balance duals); handing the model to
:func:`mosaik_bilevel.model.kkt.matrix_form` gives ``min c'y, A y = d + E p, G y <= h``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.case import Case
from .kkt import MatrixForm
from .lindistflow import LinDistFlow, Withdrawals, add_lindistflow, add_polygon, voltage_range
from .linear import Constraints, LinearModel, Variables
from .lv_community import exchange_range


@dataclass(frozen=True)
class Follower:
    """The follower's model and its blocks."""

    model: LinearModel
    periods: pd.DatetimeIndex
    step_h: float
    p_ex: Variables
    mv: LinDistFlow
    p_sub: Variables
    q_sub: Variables
    p_gen: Variables
    q_gen: Variables
    p_pv: Variables
    ramp: tuple[Constraints, ...]
    flexible_buses: tuple[int, ...]

    def cost(self, x: np.ndarray) -> float:
        """The follower's cost ``c'y`` at a solution of its own model."""
        a = self.model.arrays
        return float(a.cost @ x + a.offset)

    def dlmp(self, row_duals: np.ndarray) -> pd.DataFrame:
        """DLMPs (per MWh; bus × period) from the row duals of its own LP."""
        return pd.DataFrame(self._per_mwh(row_duals[self.mv.p_balance.ids]),
                            index=self.mv.network.buses, columns=self.periods)

    def dlmp_from_kkt(self, form: MatrixForm, lam: np.ndarray) -> np.ndarray:
        """DLMPs (per MWh; bus × period) from λ of its matrix form (one per equality row,
        in the order of ``form.eq_rows``), as the KKT system or the dual face give it."""
        return self._per_mwh(lam[np.searchsorted(form.eq_rows, self.mv.p_balance.ids)])

    def _per_mwh(self, balance_duals: np.ndarray) -> np.ndarray:
        """A DLMP is the active-balance dual per MWh: its cost per MW and period over Δt."""
        return balance_duals / self.step_h


@dataclass(frozen=True)
class ExchangePoints:
    """What the follower knows of the communities: where and how much they may exchange.

    Attributes
    ----------
    names, mv_buses
        Community names and their MV buses.
    p_range_mw
        Bounds on each exchange (communities × 2), valid on every horizon the model serves.
    q_mvar
        Reactive exchange per community and period of the horizon (data).
    q_range_mvar
        Bounds on the reactive exchange (communities × 2).
    """

    names: pd.Index
    mv_buses: np.ndarray
    p_range_mw: np.ndarray
    q_mvar: np.ndarray
    q_range_mvar: np.ndarray

    @classmethod
    def of(cls, case: Case, periods: pd.DatetimeIndex) -> ExchangePoints:
        """From the communities' own data (the exact method knows them all)."""
        cs = case.communities
        return cls(
            names=case.community_names,
            mv_buses=np.array([c.mv_bus for c in cs], dtype=int),
            p_range_mw=np.array([exchange_range(c) for c in cs]).reshape(-1, 2),
            q_mvar=np.array([c.q_exchange_mvar.loc[periods].to_numpy() for c in cs]
                            ).reshape(len(cs), len(periods)),
            q_range_mvar=np.array([[c.q_exchange_mvar.min(), c.q_exchange_mvar.max()]
                                   for c in cs]).reshape(-1, 2),
        )


def _sum_at(positions: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((n, *values.shape[1:]))
    if len(positions):
        np.add.at(out, positions, values)
    return out


def build_follower(case: Case, periods: pd.DatetimeIndex,
                   p_init_mw: pd.Series | None = None,
                   exchanges: ExchangePoints | None = None,
                   vm_min_pu: np.ndarray | None = None) -> Follower:
    """The follower LP of ``case`` over ``periods``.

    Parameters
    ----------
    p_init_mw
        Units' output before the horizon (for the first ramp), default the case's
        ``p_init_mw``.
    exchanges
        The communities as the follower sees them; default from their own data. The
        distributed method passes only what the communities disclose.
    vm_min_pu
        Lower voltage bound per MV bus and period (buses × periods; default the network's
        band), e.g. tightened by an AC correction.
    """
    mv = case.mv_network
    model = LinearModel("follower")
    ex = ExchangePoints.of(case, periods) if exchanges is None else exchanges
    # exchanges: parameters, with their range as implied bounds
    ranges = ex.p_range_mw
    p_ex = model.add_variables("p_ex_mw", (ex.names, periods), ranges[:, :1], ranges[:, 1:],
                               parameter=True, implied_lower=ranges[:, :1],
                               implied_upper=ranges[:, 1:])
    withdrawals, p_total, q_total = _mv_withdrawals(case, periods, ex)
    ldf = add_lindistflow(model, mv, periods, withdrawals, name="mv",
                          vm_set_pu=case.substation.vm_set_pu, vm_min_pu=vm_min_pu,
                          polygon_sides=case.polygon_sides)
    p_sub, q_sub = _add_substation(model, case, periods, ldf, p_total, q_total)
    p_gen, q_gen = _add_units(model, case, periods, ldf)
    ramp = _add_ramps(model, case, p_gen, periods, p_init_mw)
    p_pv = _add_pv_plants(model, case, periods, ldf)
    # exchanges are withdrawals at the communities' buses: A y = d + E p with E = +1
    model.add_terms(ldf.balance_rows(ex.mv_buses), p_ex.ids, -1.0)
    dt = case.step_h
    g, s = case.generators, case.pv_plants
    model.add_objective(p_sub.ids, dt * case.prices["upstream_per_mwh"].loc[periods].to_numpy())
    model.add_objective(p_gen.ids, dt * g[["cost_per_mwh"]].to_numpy())
    model.add_objective(p_pv.ids, dt * s[["cost_per_mwh"]].to_numpy())
    return Follower(model=model, periods=periods, step_h=dt, p_ex=p_ex, mv=ldf, p_sub=p_sub,
                    q_sub=q_sub, p_gen=p_gen, q_gen=q_gen, p_pv=p_pv, ramp=ramp,
                    flexible_buses=tuple(sorted(set(g["bus"].astype(int))
                                                | set(s["bus"].astype(int)))))


def _mv_withdrawals(case: Case, periods: pd.DatetimeIndex, ex: ExchangePoints):
    """The MV loads (and the communities' reactive exchange) per bus, and the range of each
    bus's total withdrawal, valid on every day of the case (active and reactive)."""
    mv = case.mv_network
    pos, nb = mv.position, mv.n_buses
    g, s = case.generators, case.pv_plants
    g_pos = pos.loc[g["bus"]].to_numpy()
    s_pos = pos.loc[s["bus"]].to_numpy()
    c_pos = pos.loc[ex.mv_buses].to_numpy()

    def by_bus(frame: pd.DataFrame, rows) -> np.ndarray:
        out = np.zeros((nb, frame.shape[0] if rows is None else len(rows)))
        table = frame if rows is None else frame.loc[rows]
        cols = pos.loc[[int(b) for b in table.columns]].to_numpy()
        np.add.at(out, cols, table.to_numpy().T)
        return out

    load_p = by_bus(case.mv_load_p_mw, periods)
    load_q = by_bus(case.mv_load_q_mvar, periods) + _sum_at(c_pos, ex.q_mvar, nb)
    env_p = by_bus(case.mv_load_p_mw, None)
    env_q = by_bus(case.mv_load_q_mvar, None)
    pv_max = (case.pv_plant_availability_pu.max(axis=0) * s["p_peak_mw"]).to_numpy() if len(
        s) else np.zeros(0)
    ranges, q_env = ex.p_range_mw, ex.q_range_mvar
    p_lo = (env_p.min(axis=1) + _sum_at(c_pos, ranges[:, 0], nb)
            - _sum_at(g_pos, g["p_max_mw"].to_numpy(), nb) - _sum_at(s_pos, pv_max, nb))
    p_hi = (env_p.max(axis=1) + _sum_at(c_pos, ranges[:, 1], nb)
            - _sum_at(g_pos, g["p_min_mw"].to_numpy(), nb))
    q_lo = (env_q.min(axis=1) + _sum_at(c_pos, q_env[:, 0], nb)
            - _sum_at(g_pos, g["q_max_mvar"].to_numpy(), nb))
    q_hi = (env_q.max(axis=1) + _sum_at(c_pos, q_env[:, 1], nb)
            - _sum_at(g_pos, g["q_min_mvar"].to_numpy(), nb))
    ones = np.ones((1, len(periods)))
    withdrawals = Withdrawals(load_p, load_q, (p_lo[:, None] * ones, p_hi[:, None] * ones),
                              (q_lo[:, None] * ones, q_hi[:, None] * ones))
    return withdrawals, (p_lo, p_hi), (q_lo, q_hi)


def _add_substation(model: LinearModel, case: Case, periods, ldf: LinDistFlow,
                    p_total, q_total) -> tuple[Variables, Variables]:
    """The upstream grid: limits on import and export and its polygon, implied by the
    totals; the voltages' implied ranges follow (the total withdrawal is its exchange)."""
    sub = case.substation
    s_max = sub.s_max_mva
    (p_lo, p_hi), (q_lo, q_hi) = p_total, q_total
    p_sub = model.add_variables(
        "sub.p_mw", (periods,), -sub.p_export_max_mw, sub.p_import_max_mw,
        implied_lower=p_lo.sum(), implied_upper=p_hi.sum())
    q_sub = model.add_variables("sub.q_mvar", (periods,), -s_max, s_max,
                                implied_lower=q_lo.sum(), implied_upper=q_hi.sum())
    model.add_terms(ldf.p_balance.ids[0], p_sub.ids, 1.0)
    model.add_terms(ldf.q_balance.ids[0], q_sub.ids, 1.0)
    w_lo, w_hi = voltage_range(
        case.mv_network, (p_lo, p_hi), (q_lo, q_hi),
        (-sub.p_export_max_mw, sub.p_import_max_mw), (-s_max, s_max), ldf.w_root)
    model.tighten_implied_bounds(ldf.w, w_lo[:, None], w_hi[:, None])
    lo, hi = model.arrays.box()
    add_polygon(model, "sub.polygon", pd.Index(["substation"], name="element"), periods,
                p_sub.ids[None, :], q_sub.ids[None, :], np.array([s_max]),
                (lo[p_sub.ids][None, :], hi[p_sub.ids][None, :]),
                (lo[q_sub.ids][None, :], hi[q_sub.ids][None, :]), case.polygon_sides)
    return p_sub, q_sub


def _add_units(model: LinearModel, case: Case, periods,
               ldf: LinDistFlow) -> tuple[Variables, Variables]:
    """The conventional units' active and reactive output within their limits."""
    g = case.generators
    p_gen = model.add_variables("gen.p_mw", (g.index, periods), g[["p_min_mw"]].to_numpy(),
                                g[["p_max_mw"]].to_numpy())
    q_gen = model.add_variables("gen.q_mvar", (g.index, periods), g[["q_min_mvar"]].to_numpy(),
                                g[["q_max_mvar"]].to_numpy())
    model.add_terms(ldf.balance_rows(g["bus"]), p_gen.ids, 1.0)
    model.add_terms(ldf.q_balance_rows(g["bus"]), q_gen.ids, 1.0)
    return p_gen, q_gen


def _add_pv_plants(model: LinearModel, case: Case, periods, ldf: LinDistFlow) -> Variables:
    """Utility PV up to what is available."""
    s = case.pv_plants
    avail = (case.pv_plant_availability_pu.loc[periods] * s["p_peak_mw"]).to_numpy().T if len(
        s) else np.zeros((0, len(periods)))
    p_pv = model.add_variables("pv.p_mw", (s.index, periods), 0.0, avail)
    model.add_terms(ldf.balance_rows(s["bus"]), p_pv.ids, 1.0)
    return p_pv


def _add_ramps(model: LinearModel, case: Case, p_gen: Variables, periods, p_init_mw):
    g = case.generators
    dt = case.step_h
    limit = (g["ramp_mw_per_h"] * dt).to_numpy()
    # a ramp that exceeds the whole output range can never bind
    binds = limit < (g["p_max_mw"] - g["p_min_mw"]).to_numpy() - 1e-12
    units = np.flatnonzero(binds)
    blocks = []
    if units.size and len(periods) > 1:
        idx = g.index[units]
        for direction, sign in (("up", 1.0), ("down", -1.0)):
            rows = model.add_constraints(f"gen.ramp_{direction}", (idx, periods[1:]), "<=",
                                         limit[units][:, None])
            model.add_terms(rows.ids, p_gen.ids[units, 1:], sign)
            model.add_terms(rows.ids, p_gen.ids[units, :-1], -sign)
            blocks.append(rows)
    init = g["p_init_mw"] if p_init_mw is None else p_init_mw.reindex(g.index)
    first = np.flatnonzero(binds & init.notna().to_numpy())
    if first.size:
        idx = g.index[first]
        p0 = init.to_numpy(dtype=float)[first]
        for direction, sign in (("up", 1.0), ("down", -1.0)):
            rows = model.add_constraints(f"gen.ramp_{direction}_first", (idx,), "<=",
                                         limit[first] + sign * p0)
            model.add_terms(rows.ids, p_gen.ids[first, 0], sign)
            blocks.append(rows)
    return tuple(blocks)
