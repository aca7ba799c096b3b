"""LinDistFlow (lossless, balanced) for a radial network over several periods: model.md §2.

One builder serves the MV follower and every LV community. It adds branch flows, squared
voltages and the balance, voltage-drop and thermal (polygon) constraints to a
:class:`~mosaik_bilevel.model.linear.LinearModel`; the caller adds its own injections (substation,
units, exchanges, members' devices) to the balance rows with ``+1`` (generation positive).

Per bus ``j`` and period ``t`` the active balance row reads::

    P_{a(j)j} - sum_{k: a(k)=j} P_jk + (injections added by the caller) = fixed withdrawal

and the reactive one likewise. Where every reactive injection is data (an LV feeder whose PV
and batteries run at unity power factor), reactive flows are data too: they are computed here,
not modelled, and each thermal polygon reduces to bounds on the active flow.

Implied bounds of flows and voltages come from interval arithmetic on the range of the
withdrawals at each bus (the caller passes it, typically the envelope over every day of a case
so that the model's structure does not change from day to day). They let the builder drop
polygon sides that can never bind, and give the KKT builder its primal big-Ms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.network import RadialNetwork
from ..errors import ModelError
from .linear import Constraints, LinearModel, Variables

#: Thermal ratings at or above this value (MVA) count as "no rating" (pandapower's 99999 kA).
NO_RATING_MVA = 1e5


@dataclass(frozen=True)
class Withdrawals:
    """Active and reactive withdrawals per bus and period (MW, MVAr; consumption positive).

    ``p_mw``/``q_mvar`` are the fixed parts (data, they become right-hand sides); the ranges
    bound the *total* withdrawal (fixed minus the caller's injections), shape buses × periods.
    """

    p_mw: np.ndarray
    q_mvar: np.ndarray
    p_range_mw: tuple[np.ndarray, np.ndarray]
    q_range_mvar: tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class LinDistFlow:
    """The blocks LinDistFlow added to a model."""

    network: RadialNetwork
    periods: pd.Index
    p_flow: Variables
    q_flow: Variables | None
    q_flow_fixed_mvar: np.ndarray | None
    w: Variables
    w_root: float
    p_balance: Constraints
    q_balance: Constraints | None
    voltage_drop: Constraints
    polygon: Constraints | None
    #: the root's squared voltage when it is a variable (an LV feeder behind a fixed-tap
    #: transformer), else None and the root sits at ``w_root``
    w_root_var: Variables | None = None

    def balance_rows(self, buses) -> np.ndarray:
        """Active-balance row ids (len(buses) × periods) of pandapower ``buses``."""
        return self.p_balance.ids[self.network.position.loc[list(buses)].to_numpy()]

    def q_balance_rows(self, buses) -> np.ndarray:
        """Reactive-balance row ids; only when reactive flows are modelled."""
        if self.q_balance is None:
            raise ModelError("reactive flows are data in this network; no reactive balance")
        return self.q_balance.ids[self.network.position.loc[list(buses)].to_numpy()]

    def voltages_pu(self, w: np.ndarray) -> np.ndarray:
        """Voltage magnitudes (buses × periods) from the values of :attr:`w` (non-root
        buses × periods), the root's at its set-point."""
        return np.sqrt(np.maximum(np.vstack([np.full(len(self.periods), self.w_root), w]),
                                  0.0))


def _interval_product(coef: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    a, b = coef[:, None] * lo, coef[:, None] * hi
    return np.minimum(a, b), np.maximum(a, b)


def polygon_normals(sides: int) -> np.ndarray:
    """Unit normals (sides × 2) of the regular polygon inscribed in the unit circle.

    The polygon has a vertex on the positive P axis, so a flow at unity power factor may use
    the full rating; each side's distance from the origin is ``cos(pi / sides)``.
    """
    if sides < 4 or sides % 2:
        raise ModelError(f"polygon_sides must be an even number >= 4, got {sides}")
    angles = (2 * np.arange(sides) + 1) * np.pi / sides
    return np.column_stack([np.cos(angles), np.sin(angles)])


def _knapsack_max(a: np.ndarray, lo: np.ndarray, hi: np.ndarray, total: tuple[float, float]
                  ) -> float:
    """max a·x s.t. lo <= x <= hi, total[0] <= sum(x) <= total[1] (greedy, exact)."""
    x = np.where(a > 0, hi, lo)
    s = x.sum()
    if s > total[1]:  # give up the least valuable units first
        need = s - total[1]
        order = np.argsort(a)
        room = (x - lo)[order]
        take = np.minimum(room, np.maximum(need - np.concatenate([[0], np.cumsum(room)[:-1]]),
                                           0))
        if room.sum() < need - 1e-12:
            return np.inf  # the box cannot meet the total: no bound from it
        x[order] -= take
    elif s < total[0]:
        need = total[0] - s
        order = np.argsort(-a)
        room = (hi - x)[order]
        take = np.minimum(room, np.maximum(need - np.concatenate([[0], np.cumsum(room)[:-1]]),
                                           0))
        if room.sum() < need - 1e-12:
            return np.inf
        x[order] += take
    return float(a @ x)


def voltage_range(network: RadialNetwork, p_range, q_range, p_total, q_total,
                  w_root: float) -> tuple[np.ndarray, np.ndarray]:
    """Range of every non-root bus's squared voltage under LinDistFlow.

    Withdrawals lie in per-bus boxes (``p_range``, ``q_range``: arrays over buses) and their
    sums, which lossless LinDistFlow makes equal to the root's import, in ``p_total`` and
    ``q_total``. Each bound is a continuous knapsack, solved exactly by a greedy pass.
    Uses no inequality row of the model other than these column bounds.
    """
    rc, xc = network.common_path_impedance
    lo = np.full(network.n_buses - 1, -np.inf)
    hi = np.full(network.n_buses - 1, np.inf)
    for j in range(1, network.n_buses):
        # w_j = w_root - 2 (rc_j · p + xc_j · q)
        drop_max = (_knapsack_max(rc[j], *p_range, p_total)
                    + _knapsack_max(xc[j], *q_range, q_total))
        drop_min = -(_knapsack_max(-rc[j], *p_range, p_total)
                     + _knapsack_max(-xc[j], *q_range, q_total))
        lo[j - 1] = w_root - 2 * drop_max
        hi[j - 1] = w_root - 2 * drop_min
    return lo, hi


def polygon_p_bounds(s_max: np.ndarray, q: np.ndarray, sides: int):
    """Bounds on P (elements × periods) that the polygon leaves when Q is data."""
    normals = polygon_normals(sides)
    apothem = np.cos(np.pi / sides)
    s_max = np.asarray(s_max, dtype=float)[:, None]
    lower = np.full(q.shape, -np.inf)
    upper = np.full(q.shape, np.inf)
    for cos_k, sin_k in normals:
        if abs(cos_k) < 1e-12:
            continue
        with np.errstate(invalid="ignore"):
            limit = np.where(np.isfinite(s_max), (s_max * apothem - sin_k * q) / cos_k,
                             np.inf if cos_k > 0 else -np.inf)
        if cos_k > 0:
            upper = np.minimum(upper, limit)
        else:
            lower = np.maximum(lower, limit)
    return lower, upper


def add_polygon(
    model: LinearModel,
    name: str,
    elements: pd.Index,
    periods: pd.Index,
    p_ids: np.ndarray,
    q_ids: np.ndarray,
    s_max: np.ndarray,
    p_range: tuple[np.ndarray, np.ndarray],
    q_range: tuple[np.ndarray, np.ndarray],
    sides: int,
) -> Constraints | None:
    """Keep ``(P, Q)`` of each element inside its polygonal rating, side by side.

    Sides that no point of the implied box ``p_range`` × ``q_range`` can reach are left out
    (the box must not rest on these very sides). Elements with an infinite rating get none.
    Returns the block (coordinates: element, side, period) or None when no side can bind.
    """
    normals = polygon_normals(sides)
    apothem = np.cos(np.pi / sides)
    s_max = np.asarray(s_max, dtype=float)
    (p_lo, p_hi), (q_lo, q_hi) = p_range, q_range
    nc, ns = normals[:, 0, None, None], normals[:, 1, None, None]
    reach = np.maximum(nc * p_lo, nc * p_hi) + np.maximum(ns * q_lo, ns * q_hi)
    limit = apothem * s_max[None, :, None]
    can_bind = (reach > limit * (1 - 1e-9)).any(axis=2) & np.isfinite(s_max)[None, :]
    side_k, element = np.nonzero(can_bind)
    if not side_k.size:
        return None
    index = pd.MultiIndex.from_arrays([elements[element], side_k],
                                      names=[elements.name or "element", "side"])
    rows = model.add_constraints(name, (index, periods), "<=",
                                 (apothem * s_max[element])[:, None])
    model.add_terms(rows.ids, p_ids[element], normals[side_k, 0][:, None])
    model.add_terms(rows.ids, q_ids[element], normals[side_k, 1][:, None])
    return rows


def add_lindistflow(
    model: LinearModel,
    network: RadialNetwork,
    periods: pd.Index,
    withdrawals: Withdrawals,
    *,
    name: str,
    reactive_fixed: bool = False,
    vm_set_pu: float = 1.0,
    vm_min_pu: np.ndarray | float | None = None,
    vm_max_pu: np.ndarray | float | None = None,
    polygon_sides: int = 8,
    root_variable: bool = False,
) -> LinDistFlow:
    """Add LinDistFlow for ``network`` over ``periods`` to ``model``.

    Parameters
    ----------
    withdrawals
        Fixed withdrawals and the range of total withdrawals per bus and period.
    name
        Prefix of the added blocks.
    reactive_fixed
        True when every reactive injection is data (no reactive variables are added).
    vm_set_pu
        Voltage magnitude at the root.
    vm_min_pu, vm_max_pu
        Voltage band per bus (aligned with ``network.buses``; one value, one per bus, or
        buses × periods); default the network's own
        (:meth:`~mosaik_bilevel.data.network.RadialNetwork.voltage_band`: its
        ``min_vm_pu``/``max_vm_pu``, the default band where a bus declares none).
    polygon_sides
        Sides of the polygon approximating each branch's thermal rating.
    root_variable
        The root's squared voltage is a variable within the root's band (the caller ties it
        to something, e.g. its MV bus through a fixed-tap transformer), not ``vm_set_pu``².
    """
    ranges = _flow_ranges(network, withdrawals, reactive_fixed)
    p_flow, q_flow = _add_flows(model, network, periods, ranges, name, polygon_sides)
    w_root = vm_set_pu ** 2
    vmin, vmax = _band(network, len(periods), vm_min_pu, vm_max_pu)
    root = None
    if root_variable:
        root = model.add_variables(f"{name}.w_root_pu2", (periods,), vmin[0] ** 2,
                                   vmax[0] ** 2)
    w = _add_squared_voltages(model, network, periods, ranges, w_root, vmin, vmax, name,
                              root_range=None if root is None else (vmin[0] ** 2,
                                                                    vmax[0] ** 2))
    p_balance, q_balance = _add_balances(model, network, periods, withdrawals, p_flow, q_flow,
                                         name)
    drop = _add_voltage_drops(model, network, periods, ranges, w, w_root, p_flow, q_flow, name,
                              root=root)
    polygon = None
    if not reactive_fixed:
        polygon = add_polygon(
            model, f"{name}.polygon", _branch_index(network), periods, p_flow.ids, q_flow.ids,
            _ratings(network), (ranges.p_lo, ranges.p_hi), (ranges.q_lo, ranges.q_hi),
            polygon_sides)
    return LinDistFlow(
        network=network, periods=periods, p_flow=p_flow, q_flow=q_flow,
        q_flow_fixed_mvar=ranges.q_fixed, w=w, w_root=w_root, p_balance=p_balance,
        q_balance=q_balance, voltage_drop=drop, polygon=polygon, w_root_var=root,
    )


@dataclass(frozen=True)
class _FlowRanges:
    """Implied ranges of the branch flows (branch × period): a branch carries the sum of the
    withdrawals below it. ``q_fixed``: the reactive flows where they are data."""

    p_lo: np.ndarray
    p_hi: np.ndarray
    q_lo: np.ndarray
    q_hi: np.ndarray
    q_fixed: np.ndarray | None


def _flow_ranges(network: RadialNetwork, withdrawals: Withdrawals,
                 reactive_fixed: bool) -> _FlowRanges:
    # (never intersected with the ratings: the polygon rows must not justify themselves)
    mpath = network.path_matrix
    p_lo, p_hi = (mpath @ withdrawals.p_range_mw[0], mpath @ withdrawals.p_range_mw[1])
    if reactive_fixed:
        q_fixed = mpath @ withdrawals.q_mvar
        return _FlowRanges(p_lo, p_hi, q_fixed, q_fixed, q_fixed)
    return _FlowRanges(p_lo, p_hi, mpath @ withdrawals.q_range_mvar[0],
                       mpath @ withdrawals.q_range_mvar[1], None)


def _branch_index(network: RadialNetwork) -> pd.Index:
    return pd.Index(network.branches["to_bus"].to_numpy(), name="to_bus")


def _ratings(network: RadialNetwork) -> np.ndarray:
    """Branch ratings (MVA), infinite where a branch has none."""
    s_max = network.branches["s_max_mva"].to_numpy()
    return np.where(s_max < NO_RATING_MVA, s_max, np.inf)


def _add_flows(model: LinearModel, network: RadialNetwork, periods, ranges: _FlowRanges,
               name: str, polygon_sides: int) -> tuple[Variables, Variables | None]:
    """Active branch flows (bounded by the ratings where the reactive flows are data) and,
    where they are not, reactive flows."""
    nb, nt = network.n_branches, len(periods)
    branch_index = _branch_index(network)
    p_lower = np.full((nb, nt), -np.inf)
    p_upper = np.full((nb, nt), np.inf)
    if ranges.q_fixed is not None:
        p_lower, p_upper = polygon_p_bounds(_ratings(network), ranges.q_fixed, polygon_sides)
        bad = p_lower > p_upper + 1e-12
        if bad.any():
            b, t = np.argwhere(bad)[0]
            raise ModelError(f"{name}: the reactive flow alone exceeds the rating of the branch "
                             f"to bus {branch_index[b]} in period {periods[t]}")
    p_flow = model.add_variables(f"{name}.p_flow_mw", (branch_index, periods), p_lower, p_upper,
                                 implied_lower=ranges.p_lo, implied_upper=ranges.p_hi)
    q_flow = None
    if ranges.q_fixed is None:
        q_flow = model.add_variables(f"{name}.q_flow_mvar", (branch_index, periods),
                                     implied_lower=ranges.q_lo, implied_upper=ranges.q_hi)
    return p_flow, q_flow


def _band(network: RadialNetwork, n_periods: int, vm_min_pu, vm_max_pu
          ) -> tuple[np.ndarray, np.ndarray]:
    """The voltage band (buses × periods, pu) from the arguments or the network's own."""
    band_lo, band_hi = network.voltage_band()
    shape = (network.n_buses, n_periods)

    def full(value, default):
        value = np.asarray(default if value is None else value, dtype=float)
        return np.broadcast_to(value[:, None] if value.ndim == 1 else value, shape)

    return full(vm_min_pu, band_lo), full(vm_max_pu, band_hi)


def _add_squared_voltages(model: LinearModel, network: RadialNetwork, periods,
                          ranges: _FlowRanges, w_root: float, vmin: np.ndarray,
                          vmax: np.ndarray, name: str,
                          root_range: tuple | None = None) -> Variables:
    """Squared voltages of the non-root buses within their band (buses × periods); implied
    ranges from the flow ranges (and the root's range when the root is a variable)."""
    mpath = network.path_matrix
    r = network.branches["r_pu"].to_numpy()
    x = network.branches["x_pu"].to_numpy()
    rp_lo, rp_hi = _interval_product(r, ranges.p_lo, ranges.p_hi)
    xq_lo, xq_hi = _interval_product(x, ranges.q_lo, ranges.q_hi)
    drop_lo = mpath.T @ (rp_lo + xq_lo)
    drop_hi = mpath.T @ (rp_hi + xq_hi)
    root_lo, root_hi = (w_root, w_root) if root_range is None else root_range
    return model.add_variables(f"{name}.w_pu2", (pd.Index(network.buses[1:], name="bus"),
                                                 periods),
                               vmin[1:] ** 2, vmax[1:] ** 2,
                               implied_lower=(root_lo - 2 * drop_hi)[1:],
                               implied_upper=(root_hi - 2 * drop_lo)[1:])


def _add_balances(model: LinearModel, network: RadialNetwork, periods,
                  withdrawals: Withdrawals, p_flow: Variables, q_flow: Variables | None,
                  name: str) -> tuple[Constraints, Constraints | None]:
    """Active (and, with reactive flows, reactive) balance per bus and period."""
    parent, child = network.parent_position, network.child_position
    bus_index = pd.Index(network.buses, name="bus")
    p_balance = model.add_constraints(f"{name}.p_balance", (bus_index, periods), "==",
                                      withdrawals.p_mw)
    model.add_terms(p_balance.ids[child], p_flow.ids, 1.0)
    model.add_terms(p_balance.ids[parent], p_flow.ids, -1.0)
    q_balance = None
    if q_flow is not None:
        q_balance = model.add_constraints(f"{name}.q_balance", (bus_index, periods), "==",
                                          withdrawals.q_mvar)
        model.add_terms(q_balance.ids[child], q_flow.ids, 1.0)
        model.add_terms(q_balance.ids[parent], q_flow.ids, -1.0)
    return p_balance, q_balance


def _add_voltage_drops(model: LinearModel, network: RadialNetwork, periods,
                       ranges: _FlowRanges, w: Variables, w_root: float, p_flow: Variables,
                       q_flow: Variables | None, name: str,
                       root: Variables | None = None) -> Constraints:
    """``w_child - w_parent + 2 r P + 2 x Q = 0``, with the root's w a constant (or the
    variable ``root``)."""
    parent = network.parent_position
    r = network.branches["r_pu"].to_numpy()
    x = network.branches["x_pu"].to_numpy()
    at_root = parent == 0
    rhs = np.where(at_root[:, None], 0.0 if root is not None else w_root, 0.0)
    if ranges.q_fixed is not None:
        rhs = rhs - 2 * x[:, None] * ranges.q_fixed
    drop = model.add_constraints(f"{name}.voltage_drop", (_branch_index(network), periods),
                                 "==", rhs)
    model.add_terms(drop.ids, w.ids, 1.0)
    not_root = np.flatnonzero(~at_root)
    model.add_terms(drop.ids[not_root], w.ids[parent[not_root] - 1], -1.0)
    if root is not None:
        from_root = np.flatnonzero(at_root)
        model.add_terms(drop.ids[from_root], np.broadcast_to(
            root.ids, (from_root.size, len(periods))), -1.0)
    model.add_terms(drop.ids, p_flow.ids, 2 * r[:, None])
    if q_flow is not None:
        model.add_terms(drop.ids, q_flow.ids, 2 * x[:, None])
    return drop


def ldf_voltages(network: RadialNetwork, p_mw: np.ndarray, q_mvar: np.ndarray,
                 vm_root_pu: float) -> np.ndarray:
    """LinDistFlow voltage magnitudes (aligned with ``network.buses``) at given withdrawals.

    ``w = w_root − 2 Mᵀ (r ∘ M p + x ∘ M q)`` with M the path matrix and p, q the withdrawals
    per bus in MW and Mvar (impedances are per unit on 1 MVA).
    """
    m = network.path_matrix
    r = network.branches["r_pu"].to_numpy()
    x = network.branches["x_pu"].to_numpy()
    drop = m.T @ (r * (m @ p_mw) + x * (m @ q_mvar))
    return np.sqrt(np.maximum(vm_root_pu ** 2 - 2.0 * drop, 0.0))
