"""The coordinator of LDD-ADMM: the market operator with the follower's KKT system (§6).

The coordinator holds the MV side (network, units, prices: its own data) and knows each
community only by its name, its MV bus and what it discloses (its reactive exchange profile,
transformer rating and whether its LV voltage follows its MV bus, a ``fixed``-model
transformer). It receives coupling vectors and sends targets; it never touches a community
object. A coupling vector is the exchange profile (MW) and, for a fixed-model community, its
MV-voltage profile after it (scaled, :mod:`~mosaik_bilevel.methods.ldd_admm.coupling`); the
coordinator's copy of that voltage is the follower's squared voltage at the community's bus
in its KKT model.

- :meth:`Coordinator.step` solves ``min payments(z) − ν'z + ρ/2 ‖x − z‖²`` subject to the
  follower's KKT conditions in the targets ``z`` (payments through strong duality in ``dlmp``
  pricing; none in ``tariff`` pricing, where the communities pay the tariff themselves);
- :meth:`Coordinator.settle` settles given exchanges: the follower's exact response (its LP),
  the DLMPs and, in ``dlmp`` pricing, the price the optimistic leader is entitled to (the best
  one over the follower's dual-optimal face, as in the exact method). With fixed-model
  communities it also picks, among the follower's optimal dispatches, one whose MV voltage at
  each such community's bus lies in the range the community's schedule tolerates (an LP,
  :class:`VoltageSelection`); an iterate for which none exists is not consistent.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...data.case import Case
from ...errors import OptionsError
from ...model.big_m import SAFETY, follower_dual_big_m
from ...model.follower import ExchangePoints, Follower, build_follower
from ...model.kkt import KKTSystem, add_kkt, embed
from ...model.lindistflow import polygon_p_bounds
from ...model.linear import LinearModel
from ...solvers.highs import HighsSolver, SolverOptions
from ...solvers.lazy import LazyBinaries
from ..certificate import (
    FEASIBILITY_TOLERANCE,
    FollowerOracle,
    FollowerResponse,
    best_price_for_leader,
    duals_at_bound,
    enlarge_dual_big_m,
)
from .coupling import REFERENCE_PU2, VOLTAGE_SCALE, WINDOW_PU2, VoltageCoupling
from .step import PenalizedStep, PenaltySpec


@dataclass
class VoltageCheck:
    """The follower's dispatch against the fixed-model communities' voltage requirements.

    Attributes
    ----------
    names
        The fixed-model communities.
    w_mv_pu2
        The chosen dispatch's squared voltage at their buses (community × period).
    violation_pu2
        The largest distance of that voltage from a community's tolerated range.
    tolerance_pu2
        The largest violation accepted as consistent.
    message
        What was done (and why it failed, if it did).
    """

    names: list[str]
    w_mv_pu2: np.ndarray | None
    violation_pu2: float
    tolerance_pu2: float
    message: str

    @property
    def ok(self) -> bool:
        return bool(self.violation_pu2 <= self.tolerance_pu2)


@dataclass
class Settlement:
    """The market cleared at given exchanges."""

    response: FollowerResponse
    follower: Follower
    payments: np.ndarray | None  # community × period (dlmp pricing), else None
    dlmp: np.ndarray | None  # bus × period, the price the leader pays (per MWh)
    voltage: VoltageCheck | None = None  # fixed-model communities only

    @property
    def feasible(self) -> bool:
        """The follower has an optimal response meeting every community's requirement."""
        return self.response.ok and (self.voltage is None or self.voltage.ok)


class Coordinator:
    """The market operator's side of LDD-ADMM (see the module docstring).

    Parameters
    ----------
    case
        The case; only its MV side is read.
    connections
        Community name → MV bus (public: where each community is connected).
    voltage_scale
        σ of the voltage coordinates (MW per pu²)
        (:mod:`~mosaik_bilevel.methods.ldd_admm.coupling`).
    voltage_window_pu2
        Half-width of the tolerated MV-voltage range a community reports at most.
    voltage_tolerance_pu2
        Largest violation of a community's tolerated range an iterate may have and still be
        consistent (default the exact method's certificate's feasibility tolerance).
    """

    def __init__(self, case: Case, connections: dict[str, int], *, pricing: str,
                 options: SolverOptions | None = None, penalty: PenaltySpec | None = None,
                 dual_big_m_safety: float = SAFETY, max_enlargements: int = 3,
                 voltage_scale: float = VOLTAGE_SCALE,
                 voltage_window_pu2: float = WINDOW_PU2,
                 voltage_tolerance_pu2: float = FEASIBILITY_TOLERANCE):
        self._case = case
        self._voltage_scale = float(voltage_scale)
        self._voltage_window = float(voltage_window_pu2)
        self._voltage_tolerance = float(voltage_tolerance_pu2)
        self._names = pd.Index(list(connections), name="community")
        self._buses = np.array([connections[n] for n in self._names], dtype=int)
        self._pricing = pricing
        self._options = options or SolverOptions()
        self._penalty_spec = penalty or PenaltySpec()
        self._safety = dual_big_m_safety
        self._max_enlargements = max_enlargements
        self._oracle = FollowerOracle(self._options)
        self.log: list[str] = []

    @property
    def names(self) -> pd.Index:
        return self._names

    @property
    def mv_buses(self) -> np.ndarray:
        return self._buses

    def coupling(self, name: str) -> VoltageCoupling:
        """How community ``name``'s MV voltage enters consensus (public: the scale, the
        reference, the window); used if the community turns out to be fixed-model."""
        return VoltageCoupling(scale=self._voltage_scale, reference_pu2=REFERENCE_PU2,
                               window_pu2=self._voltage_window)

    @property
    def voltage_coupled(self) -> list[str]:
        """The communities whose coupling vector holds their MV-voltage profile."""
        return list(self._fixed)

    def sizes(self) -> dict[str, int]:
        """Length of each community's coupling vector."""
        n = len(self._periods)
        return {name: 2 * n if name in self._fixed else n for name in self._names}

    def exchanges(self, x: dict[str, list]) -> dict[str, list]:
        """The exchange profiles (MW) of coupling vectors."""
        n = len(self._periods)
        return {name: list(x[name][:n]) for name in self._names}

    def assumed_voltages(self, x: dict[str, list]) -> dict[str, list]:
        """The MV squared voltages (pu²) the fixed-model communities' vectors assume."""
        n = len(self._periods)
        return {name: self._fixed[name].voltage(x[name][n:]).tolist() for name in self._fixed
                if len(x[name]) == 2 * n}

    @property
    def q_exchange(self) -> np.ndarray:
        """The reactive exchanges the communities disclosed (community × period)."""
        return self._q

    def open(self, periods: pd.DatetimeIndex, disclosed: dict[str, dict],
             p_init_mw: pd.Series | None = None) -> None:
        """Build the coordinator's model for one horizon from what the communities disclose."""
        q = np.array([disclosed[n]["q_mvar"] for n in self._names], dtype=float).reshape(
            len(self._names), len(periods))
        s = np.array([disclosed[n]["s_max_mva"] for n in self._names], dtype=float)
        exchanges = ExchangePoints(
            names=self._names, mv_buses=self._buses,
            p_range_mw=np.column_stack([-s, s]), q_mvar=q,
            q_range_mvar=np.column_stack([q.min(axis=1), q.max(axis=1)]))
        follower = build_follower(self._case, periods, p_init_mw=p_init_mw,
                                  exchanges=exchanges)
        host = LinearModel("coordinator")
        lo, hi = polygon_p_bounds(s, q, self._case.polygon_sides)
        z = host.add_variables("z_mw", (self._names, periods), lo, hi,
                               implied_lower=-s[:, None], implied_upper=s[:, None])
        kkt = add_kkt(host, follower.model, {follower.p_ex.name: z.ids},
                      lambda f: follower_dual_big_m(follower, f, self._safety),
                      prefix="follower")
        if self._pricing == "dlmp":
            host.add_objective(*kkt.payment_terms())
        self._periods, self._follower, self._host, self._q = periods, follower, host, q
        self._z, self._kkt = z, kkt
        self._fixed = {n: self.coupling(n) for n in self._names
                       if disclosed[n].get("transformer_model") == "fixed"}
        if self._fixed and self._penalty_spec.miqp_solver:
            raise OptionsError("miqp_solver", f"the exact quadratic penalty is not available "
                               f"with fixed-model transformers ({', '.join(self._fixed)}): "
                               f"SCIP failed on the coordinator's first step of a test case "
                               f"(LP solver error, or no answer); leave it unset to use "
                               f"HiGHS with the piecewise-linear penalty")
        for name, coupling in self._fixed.items():  # both sides must scale alike
            theirs = disclosed[name].get("voltage_coupling", {})
            ours = dataclasses.asdict(coupling)
            if any(not np.isclose(theirs.get(k, np.nan), v, rtol=1e-12, atol=0.0)
                   for k, v in ours.items()):
                raise ValueError(f"community {name} couples its MV voltage as {theirs}, the "
                                 f"coordinator as {ours}: give both the same options")
        cols, span = self._coupling_columns(), 2.0 * float(s.max())
        if self._fixed:
            span = max(span, max(c.span for c in self._fixed.values()))
        host.set_objective_term("multiplier", cols, 0.0)
        self._cols = cols
        lazy = LazyBinaries.of([], kkt)
        self._step = PenalizedStep(host, cols, self._penalty_spec, self._options, lazy,
                                   span_mw=span, form="segments")
        self._selection = (VoltageSelection(follower, self._buses_of(self._fixed),
                                            self._options, self._voltage_tolerance)
                           if self._fixed else None)

    def _buses_of(self, names) -> dict[str, int]:
        return {n: int(self._buses[self._names.get_loc(n)]) for n in names}

    def _coupling_columns(self) -> np.ndarray:
        """The host's columns of every community's coupling vector, in order: its targets
        ``z`` (MW) and, for a fixed-model community, ``σ (w − w_ref)`` of the follower's
        squared voltage at its bus (a column of its own, defined by one row per period)."""
        host, periods = self._host, self._periods
        w_ids = self._kkt.primal.ids(self._follower.mv.w)  # non-root buses × periods
        position = self._follower.mv.network.position
        parts = []
        for i, name in enumerate(self._names):
            parts.append(self._z.ids[i])
            coupling = self._fixed.get(name)
            if coupling is None:
                continue
            pos = int(position.at[int(self._buses[i])])
            w = w_ids[pos - 1]  # bounded by the MV band: so is the coordinate
            a = host.arrays
            u = host.add_variables(f"w_mv_coordinate[{name}]", (periods,),
                                   coupling.coordinate(a.col_lower[w]),
                                   coupling.coordinate(a.col_upper[w]))
            row = host.add_constraints(f"w_mv_coordinate_def[{name}]", (periods,), "==",
                                       -coupling.scale * coupling.reference_pu2)
            host.add_terms(row.ids, u.ids, 1.0)
            host.add_terms(row.ids, w, -coupling.scale)
            parts.append(u.ids)
        return np.concatenate(parts)

    @property
    def kkt(self) -> KKTSystem:
        return self._kkt

    def step(self, x: dict[str, list], multiplier: dict[str, list], rho: float,
             abs_gap: float | None = None) -> dict:
        """The coordinator step; returns ``{"z": {name: [...]}, "bound": δ, "status": ...}``.

        ``x``, ``multiplier`` and the returned targets are coupling vectors (:meth:`sizes`).
        """
        xs = self._flat(x)
        nu = self._flat(multiplier)
        self._host.set_objective_term("multiplier", self._cols, -nu)
        for _attempt in range(self._max_enlargements + 1):
            step = self._step.solve(xs, rho, abs_gap)
            sol = step.x
            if sol is None:
                raise RuntimeError(f"the coordinator step is {step.status}")
            at = duals_at_bound(self._kkt, sol)
            if not at.size:
                break
            enlarge_dual_big_m(self._kkt, self._host, at)
            self.log.append(f"coordinator: {at.size} duals at their big-M bound; enlarged "
                            f"them tenfold and re-solved")
        return {"z": self._split(sol[self._cols]), "bound": step.bound,
                "status": step.status}

    def settle(self, x: dict[str, list],
               w_range: dict[str, list] | None = None) -> Settlement:
        """The follower's exact response to the exchanges in ``x`` and the leader's prices.

        ``x`` holds coupling vectors or exchange profiles (their first ``len(periods)``
        values are read). ``w_range``: per fixed-model community the tolerated MV squared
        voltages (``[low, high]``, per period) its step reported; with them the dispatch is
        chosen among the follower's optima to meet them (:class:`VoltageSelection`), and the
        settlement is consistent only if it does. Without them (e.g. settling another
        method's exchanges for their prices) no voltage is checked.
        """
        xs = self._stack(self.exchanges(x))
        response = self._oracle.respond(self._follower, xs)
        voltage = None
        if response.ok and self._selection is not None and w_range:
            response, voltage = self._selection.choose(response, xs, w_range,
                                                       self.assumed_voltages(x))
        if not response.ok or self._pricing != "dlmp":
            dlmp = None if response.dlmp is None else response.dlmp.to_numpy()
            return Settlement(response, self._follower, None, dlmp, voltage)
        # the optimal primal-dual pairs of an LP are the product of its primal and dual
        # optimal sets: choosing the dispatch (above) leaves every dual-optimal price open
        best = best_price_for_leader(self._kkt.form, xs, response.cost, self._options)
        lam = best.lam if best.lam is not None else response.row_duals[self._kkt.form.eq_rows]
        dlmp = self._follower.dlmp_from_kkt(self._kkt.form, lam)  # bus × period
        pos = self._follower.mv.network.position.loc[self._buses].to_numpy()
        payments = dlmp[pos] * xs * self._case.step_h
        return Settlement(response, self._follower, payments, dlmp, voltage)

    def _stack(self, values: dict[str, list]) -> np.ndarray:
        return np.array([values[n] for n in self._names], dtype=float).reshape(
            len(self._names), len(self._periods))

    def _flat(self, values: dict[str, list]) -> np.ndarray:
        """Coupling vectors by name, concatenated in the coordinator's order."""
        return np.concatenate([np.asarray(values[n], dtype=float) for n in self._names])

    def _split(self, flat: np.ndarray) -> dict[str, list]:
        out, start = {}, 0
        for name, size in self.sizes().items():
            out[name] = flat[start:start + size].tolist()
            start += size
        return out


class VoltageSelection:
    """Among the follower's optimal dispatches, one meeting the communities' voltage ranges.

    The follower LP's own constraints (a copy, the exchanges fixed), its cost at most its
    optimum ``F*`` plus ``1e-9 · max(1, |F*|)``, and per fixed-model community ``c`` and
    period ``t``::

        w_{n(c),t} + v⁻_{c,t} ≥ W^lo_{c,t},     w_{n(c),t} − v⁺_{c,t} ≤ W^hi_{c,t},     v ≥ 0

    minimising ``Σ v``. The dispatch found is optimal for the follower; when every ``v`` is
    within the tolerance its MV voltages lie in every community's tolerated range, so each
    community's schedule keeps its LV band (:mod:`~mosaik_bilevel.methods.ldd_admm.coupling`):
    the iterate is bilevel feasible, and this is the optimistic choice of the follower's
    response. Among those dispatches a second solve of the same LP (each ``v`` held at its
    value) takes the one whose voltages are closest (``Σ |w − w_assumed|``) to what the
    communities assumed, rather than an arbitrary vertex of the range. Otherwise no optimal
    dispatch meets the ranges and the iterate is not consistent. Its prices are not touched
    (any dual optimum pairs with any primal optimum).
    """

    def __init__(self, follower: Follower, buses: dict[str, int], options: SolverOptions,
                 tolerance: float):
        self._follower, self._names, self._tolerance = follower, list(buses), tolerance
        model = LinearModel("voltage selection")
        p_ex = follower.p_ex
        p = model.add_variables("p_ex_mw", p_ex.coords, 0.0, 0.0)
        self._embedding = emb = embed(model, follower.model, {p_ex.name: p.ids},
                                      prefix="follower")
        a = follower.model.arrays
        cols = np.flatnonzero(a.cost)
        self._offset = a.offset
        self._optimal = model.add_constraints("optimality", (pd.RangeIndex(1),), "<=", 0.0)
        model.add_terms(self._optimal.ids[0], emb.col_map[cols], a.cost[cols])
        w = emb.ids(follower.mv.w)
        position = follower.mv.network.position
        self._w = np.array([w[int(position.at[buses[n]]) - 1] for n in self._names])
        index = (pd.Index(self._names, name="community"), follower.periods)
        self._below = model.add_variables("below_pu2", index, 0.0)
        self._above = model.add_variables("above_pu2", index, 0.0)
        self._low = model.add_constraints("w_low", index, ">=", 0.0)
        model.add_terms(self._low.ids, self._w, 1.0)
        model.add_terms(self._low.ids, self._below.ids, 1.0)
        self._high = model.add_constraints("w_high", index, "<=", 0.0)
        model.add_terms(self._high.ids, self._w, 1.0)
        model.add_terms(self._high.ids, self._above.ids, -1.0)
        # |w − w_assumed| <= d, for the second solve
        self._distance = model.add_variables("distance_pu2", index, 0.0)
        self._near = []
        for name, sign in (("assumed_below", 1.0), ("assumed_above", -1.0)):
            rows = model.add_constraints(name, index, ">=", 0.0)
            model.add_terms(rows.ids, self._distance.ids, 1.0)
            model.add_terms(rows.ids, self._w, sign)
            self._near.append((rows, sign))
        self._violations = np.concatenate([self._below.ids.ravel(), self._above.ids.ravel()])
        self._model, self._p = model, p
        self._solver = HighsSolver(SolverOptions(
            time_limit_s=options.time_limit_s, threads=options.threads, log=options.log,
            primal_feasibility_tolerance=1e-9, dual_feasibility_tolerance=1e-9))
        self._solver.load(model)

    def choose(self, response: FollowerResponse, exchanges: np.ndarray,
               w_range: dict[str, list], assumed: dict[str, list]
               ) -> tuple[FollowerResponse, VoltageCheck]:
        """The follower's response with the chosen dispatch, and the voltage check."""
        model = self._model
        model.set_bounds(self._p, exchanges, exchanges)
        slack = 1e-9 * max(1.0, abs(response.cost))
        model.set_rhs(self._optimal, np.array([response.cost - self._offset + slack]))
        low = np.array([w_range[n][0] for n in self._names], dtype=float)
        high = np.array([w_range[n][1] for n in self._names], dtype=float)
        model.set_rhs(self._low, low)
        model.set_rhs(self._high, high)
        for block in (self._below, self._above):
            model.set_bounds(block, 0.0, np.inf)
        self._objective(violation=1.0, distance=0.0)
        res = self._solve()
        if not res.status.ok or res.x is None:
            return response, VoltageCheck(
                self._names, None, float("inf"), self._tolerance,
                f"no dispatch chosen: the selection LP is {res.status.value}")
        x = res.x
        violation = float(max(x[self._below.ids].max(), x[self._above.ids].max(), 0.0))
        if violation <= self._tolerance and all(n in assumed for n in self._names):
            x = self._nearest(x, np.array([assumed[n] for n in self._names], dtype=float))
        w = x[self._w]
        chosen = dataclasses.replace(response, x=x[self._embedding.col_map])
        shift = max((float(np.max(np.abs(w[i] - np.asarray(assumed[n]))))
                     for i, n in enumerate(self._names) if n in assumed), default=0.0)
        message = (f"the follower's optimal dispatch meets the tolerated MV-voltage ranges "
                   f"of {', '.join(self._names)} (largest violation {violation:.3g} pu², its "
                   f"voltages within {shift:.3g} pu² of those assumed)")
        return chosen, VoltageCheck(self._names, w, violation, self._tolerance, message)

    def _objective(self, violation: float, distance: float) -> None:
        self._model.set_objective_term("violation", self._violations, violation)
        self._model.set_objective_term("distance", self._distance.ids.ravel(), distance)

    def _solve(self):
        self._solver.update(self._model)
        return self._solver.solve(duals=False)

    def _nearest(self, x: np.ndarray, assumed: np.ndarray) -> np.ndarray:
        """The dispatch, with the violations found held, nearest the assumed voltages (the
        first solve's ``x`` if the second fails)."""
        model = self._model
        for block in (self._below, self._above):
            model.set_bounds(block, 0.0, x[block.ids] + 1e-12)
        for rows, sign in self._near:
            model.set_rhs(rows, sign * assumed)
        self._objective(violation=0.0, distance=1.0)
        res = self._solve()
        return res.x if res.status.ok and res.x is not None else x
