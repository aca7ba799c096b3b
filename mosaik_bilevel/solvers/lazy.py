"""Lazy binaries: solve with some binaries relaxed, restore only those a solution needs.

Three groups of binaries only *enforce* a logic that an optimal solution often satisfies on
its own:

- a battery's mode ``z`` forbids charging and discharging in the same period;
- a shiftable load's status ``on`` must be whole;
- a complementarity binary ``β`` forbids a positive dual on a row with positive slack.

The model is solved with them continuous in [0, 1]: a relaxation. If its solution satisfies
every relaxed logic, it is feasible for the full model and therefore optimal for it (the bound
of the relaxation bounds the full model too, so the MIP gap carries over). Otherwise the
binaries at fault become integer again and the model is re-solved: finitely many rounds, each
a relaxation of the full model, the last one exact.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..model.kkt import KKTSystem
from ..model.lv_community import CommunityBlocks
from .highs import HighsResult, HighsSolver, SolveStatus

#: A value above this counts as positive (MW, MWh, cost units per unit).
TOL = 1e-7
#: Under a time limit for all rounds, the least share of it one round gets.
MIN_ROUND_SHARE = 0.1


@dataclass
class LazyBinaries:
    """The relaxed binaries of a formulation and the checks that restore them."""

    z: np.ndarray  # (n, 3): z, p_ch, p_dis column ids
    on: np.ndarray
    beta: np.ndarray  # β column ids (aligned with the KKT's kept rows)
    kkt: KKTSystem | None = None

    @classmethod
    def of(cls, communities: list[CommunityBlocks], kkt: KKTSystem | None) -> LazyBinaries:
        z = [np.column_stack([c.z.ids.ravel(), c.p_ch.ids.ravel(), c.p_dis.ids.ravel()])
             for c in communities if c.z is not None]
        on = [c.on.ids.ravel() for c in communities if c.on is not None]
        return cls(
            z=np.vstack(z) if z else np.zeros((0, 3), dtype=np.int64),
            on=np.concatenate(on) if on else np.zeros(0, dtype=np.int64),
            beta=kkt.beta.ids.ravel() if kkt is not None else np.zeros(0, dtype=np.int64),
            kkt=kkt,
        )

    @classmethod
    def none(cls) -> LazyBinaries:
        """No lazy binaries: every binary stays integer."""
        empty = np.zeros(0, dtype=np.int64)
        return cls(z=np.zeros((0, 3), dtype=np.int64), on=empty, beta=empty)

    @property
    def columns(self) -> np.ndarray:
        return np.concatenate([self.z[:, 0], self.on, self.beta])

    def violations(self, x: np.ndarray, relaxed: np.ndarray) -> np.ndarray:
        """Relaxed columns whose logic the solution ``x`` breaks."""
        bad = []
        if self.z.size:
            both = (x[self.z[:, 1]] > TOL) & (x[self.z[:, 2]] > TOL)
            bad.append(self.z[both, 0])
        if self.on.size:
            bad.append(self.on[np.abs(x[self.on] - np.round(x[self.on])) > 1e-6])
        if self.beta.size:
            kkt = self.kkt
            g = kkt.form.G[kkt.kept]
            slack = kkt.form.h[kkt.kept] - g @ x[kkt.y]
            mu = x[kkt.mu.ids]
            bad.append(self.beta[(mu > TOL) & (slack > TOL)])
        cols = np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)
        return cols[relaxed[cols]]

    def complete(self, x: np.ndarray) -> np.ndarray:
        """Whole values for the relaxed modes of a solution that passed the checks."""
        x = x.copy()
        if self.z.size:
            x[self.z[:, 0]] = (x[self.z[:, 1]] > TOL).astype(float)
        if self.on.size:
            x[self.on] = np.round(x[self.on])
        return x


@dataclass
class LazyOutcome:
    """The end of :func:`solve_lazily`: the last solve, its solution, and how it went."""

    result: HighsResult  # the last solve (status, objective, MIP gap and bound)
    x: np.ndarray | None  # its solution with the relaxed modes completed; None: no solution
    rounds: int  # solves, each a relaxation of the full model
    solve_s: float = 0.0
    polish_s: float = 0.0
    notes: list[str] = field(default_factory=list)  # e.g. a polishing LP that failed


def solve_lazily(highs: HighsSolver, lazy: LazyBinaries | None, integer: np.ndarray, *,
                 polish: bool, restored: np.ndarray | None = None,
                 time_limit_s: float | None = None) -> LazyOutcome:
    """Solve with ``lazy``'s binaries relaxed, restoring those a solution needs.

    Parameters
    ----------
    highs
        The solver holding the model.
    lazy
        The binaries to relax (None: none, a plain solve).
    integer
        The model's integrality; ``lazy``'s columns start relaxed.
    polish
        Re-solve the LP with the integers fixed before checking (exact complementarity:
        HiGHS's integrality tolerance leaves a product μ·slack of up to its tolerance).
    restored
        Lazy columns to start as integers (those a previous, similar solve needed): saves
        rounds in iterative methods; the answer is exact either way.
    time_limit_s
        Time for all rounds together (default: each round has the solver's own limit). A
        round gets what is left, but at least :data:`MIN_ROUND_SHARE` of it (its incumbent
        is needed to know which binaries to restore); a round stopped before it found any
        solution is run once more with the whole time.
    """
    lazy = lazy or LazyBinaries.none()
    mask = np.asarray(integer, dtype=bool).copy()
    mask[lazy.columns] = False
    if restored is not None:
        mask[restored] = True
    highs.set_integrality(mask)
    budget = time_limit_s if time_limit_s is not None and np.isfinite(time_limit_s) else None
    deadline = None if budget is None else time.perf_counter() + budget
    out = LazyOutcome(None, None, 0)
    try:
        while True:
            t0 = time.perf_counter()
            res = _solve_round(highs, deadline, budget)
            out.solve_s += time.perf_counter() - t0
            out.result, out.rounds = res, out.rounds + 1
            if not res.has_solution:
                return out
            t0 = time.perf_counter()
            x = _polished(highs, res, out.notes) if polish else res.x
            out.polish_s += time.perf_counter() - t0
            restore = lazy.violations(x, ~highs.integrality)
            if not restore.size:
                out.x = lazy.complete(x)
                return out
            mask = highs.integrality.copy()
            mask[restore] = True
            highs.set_integrality(mask)
    finally:
        if deadline is not None:
            highs.set_time_limit(None)


def _solve_round(highs: HighsSolver, deadline: float | None, budget: float | None
                 ) -> HighsResult:
    """One round under what is left of the time budget (see :func:`solve_lazily`)."""
    if deadline is not None:
        highs.set_time_limit(max(deadline - time.perf_counter(), MIN_ROUND_SHARE * budget))
    res = highs.solve(duals=False)
    if deadline is not None and not res.has_solution and res.status is SolveStatus.TIME_LIMIT:
        highs.set_time_limit(budget)
        res = highs.solve(duals=False)
    return res


def _polished(highs: HighsSolver, res: HighsResult, notes: list[str]) -> np.ndarray:
    """The LP re-solved with the integers fixed at their values (the MIP's own if it fails)."""
    if not highs.integrality.any():
        return res.x
    ints = np.flatnonzero(highs.integrality)
    fixed = highs.solve_fixed(ints, np.round(res.x[ints]))
    if fixed.has_solution and fixed.status.ok:
        return fixed.x
    notes.append(f"polishing LP was {fixed.status.value}; kept the MIP solution")
    return res.x
