"""The coordinator of LDD-ADMM: the market operator with the follower's KKT system (§6).

The coordinator holds the MV side (network, units, prices: its own data) and knows each
community only by its name, its MV bus and what it discloses (its reactive exchange profile
and transformer rating). It receives exchange profiles and sends targets; it never touches a
community object.

- :meth:`Coordinator.step` solves ``min payments(z) − ν'z + ρ/2 ‖x − z‖²`` subject to the
  follower's KKT conditions in the targets ``z`` (payments through strong duality in ``dlmp``
  pricing; none in ``tariff`` pricing, where the communities pay the tariff themselves);
- :meth:`Coordinator.settle` settles given exchanges: the follower's exact response (its LP),
  the DLMPs and, in ``dlmp`` pricing, the price the optimistic leader is entitled to (the best
  one over the follower's dual-optimal face, as in the exact method).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...data.case import Case
from ...model.big_m import SAFETY, follower_dual_big_m
from ...model.follower import ExchangePoints, Follower, build_follower
from ...model.kkt import KKTSystem, add_kkt
from ...model.lindistflow import polygon_p_bounds
from ...model.linear import LinearModel
from ...solvers.highs import SolverOptions
from ...solvers.lazy import LazyBinaries
from ..certificate import (
    FollowerOracle,
    FollowerResponse,
    best_price_for_leader,
    duals_at_bound,
    enlarge_dual_big_m,
)
from .step import PenalizedStep, PenaltySpec


@dataclass
class Settlement:
    """The market cleared at given exchanges."""

    response: FollowerResponse
    follower: Follower
    payments: np.ndarray | None  # community × period (dlmp pricing), else None
    dlmp: np.ndarray | None  # bus × period, the price the leader pays (per MWh)

    @property
    def feasible(self) -> bool:
        return self.response.ok


class Coordinator:
    """The market operator's side of LDD-ADMM (see the module docstring).

    Parameters
    ----------
    case
        The case; only its MV side is read.
    connections
        Community name → MV bus (public: where each community is connected).
    """

    def __init__(self, case: Case, connections: dict[str, int], *, pricing: str,
                 options: SolverOptions | None = None, penalty: PenaltySpec | None = None,
                 dual_big_m_safety: float = SAFETY, max_enlargements: int = 3):
        self._case = case
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
        host.set_objective_term("multiplier", z.ids, 0.0)
        self._periods, self._follower, self._host, self._q = periods, follower, host, q
        self._z, self._kkt = z, kkt
        lazy = LazyBinaries.of([], kkt)
        self._step = PenalizedStep(host, z.ids, self._penalty_spec, self._options, lazy,
                                   span_mw=2.0 * float(s.max()), form="segments")

    @property
    def kkt(self) -> KKTSystem:
        return self._kkt

    def step(self, x: dict[str, list], multiplier: dict[str, list], rho: float,
             abs_gap: float | None = None) -> dict:
        """The coordinator step; returns ``{"z": {name: [...]}, "bound": δ, "status": ...}``."""
        xs = self._stack(x)
        nu = self._stack(multiplier)
        self._host.set_objective_term("multiplier", self._z.ids, -nu)
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
        z = sol[self._z.ids]
        return {"z": {n: z[i].tolist() for i, n in enumerate(self._names)},
                "bound": step.bound, "status": step.status}

    def settle(self, x: dict[str, list]) -> Settlement:
        """The follower's exact response to the exchanges ``x`` and the leader's prices."""
        xs = self._stack(x)
        response = self._oracle.respond(self._follower, xs)
        if not response.ok or self._pricing != "dlmp":
            dlmp = None if response.dlmp is None else response.dlmp.to_numpy()
            return Settlement(response, self._follower, None, dlmp)
        best = best_price_for_leader(self._kkt.form, xs, response.cost, self._options)
        lam = best.lam if best.lam is not None else response.row_duals[self._kkt.form.eq_rows]
        dlmp = self._follower.dlmp_from_kkt(self._kkt.form, lam)  # bus × period
        pos = self._follower.mv.network.position.loc[self._buses].to_numpy()
        payments = dlmp[pos] * xs * self._case.step_h
        return Settlement(response, self._follower, payments, dlmp)

    def _stack(self, values: dict[str, list]) -> np.ndarray:
        return np.array([values[n] for n in self._names], dtype=float).reshape(
            len(self._names), len(self._periods))
