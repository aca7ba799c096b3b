"""One ADMM step: a linear model plus ρ/2 ‖x[cols] − c‖², solved one of two ways.

- default: HiGHS with the penalty as tangents (:mod:`mosaik_bilevel.model.penalty`), binaries solved
  lazily and the answer polished (the MIP gap cannot resolve penalties of ρ ε²); the time
  limit holds for the whole step (all lazy rounds together), a step stopped by it returns its
  incumbent with the status ``time_limit``, and its remaining gap is added to the step's
  error bound;
- ``PenaltySpec(miqp_solver=...)``: the exact quadratic with a MIQP-capable solver through
  Pyomo (:mod:`mosaik_bilevel.solvers.miqp`).

Both sides of LDD-ADMM (communities and coordinator) use it; each holds its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...model.linear import LinearModel
from ...model.penalty import add_quadratic_penalty
from ...solvers.highs import HighsSolver, SolverOptions
from ...solvers.lazy import LazyBinaries, solve_lazily
from ...solvers.miqp import PyomoMIQP, QuadraticSolveError


@dataclass(frozen=True)
class PenaltySpec:
    """How the ADMM penalty is represented.

    Tangents (HiGHS): the epigraph is flat within ``±step_mw / 2`` of its centre, so an
    exchange may sit that far from its target at no cost; ``step_mw`` must stay below the
    absolute tolerance of the primal residual (the method requires at most half of it).
    ``miqp_solver``: a Pyomo solver name (``scip``, ``gurobi_direct``, ...) for the exact
    quadratic instead.
    """

    step_mw: float = 5e-6
    dense: int = 20
    growth: float = 1.3
    miqp_solver: str | None = None

    @property
    def resolution_mw(self) -> float:
        """Finest change of the penalised variables a step can express."""
        return 0.0 if self.miqp_solver else self.step_mw


@dataclass
class PenalizedSolution:
    """A penalized step's answer: its solution (None if none), status and error bound."""

    x: np.ndarray | None
    status: str
    bound: float


class PenalizedStep:
    """``min model.cost·x + ρ/2 ‖x[cols] − c‖²`` over ``model``, re-solved each iteration.

    Parameters
    ----------
    model
        The step's model, complete except for the penalty (added here in tangent mode).
    cols
        The penalised columns.
    span_mw
        Range the penalised columns can move over (how far the tangents must reach).
    lazy
        Binaries HiGHS may solve lazily (tangent mode).
    form
        How the tangents enter the model (:mod:`mosaik_bilevel.model.penalty`): ``cuts`` (rows; best
        for the communities' small steps) or ``segments`` (bounded columns; best for the
        coordinator's MILP).
    """

    def __init__(self, model: LinearModel, cols: np.ndarray, spec: PenaltySpec,
                 options: SolverOptions, lazy: LazyBinaries, span_mw: float,
                 form: str = "cuts"):
        self.model, self.cols, self.spec = model, np.asarray(cols), spec
        self._lazy = lazy
        self._restored: np.ndarray | None = None
        if spec.miqp_solver:
            self._miqp = PyomoMIQP(spec.miqp_solver, options)
            self._miqp.load(model, self.cols)
            self._penalty = None
        else:
            self._penalty = add_quadratic_penalty(model, self.cols, name="penalty",
                                                  step=spec.step_mw, dense=spec.dense,
                                                  span=span_mw, growth=spec.growth,
                                                  form=form)
            self._highs = HighsSolver(options)
            self._highs.load(model)

    def solve(self, centre: np.ndarray, rho: float,
              abs_gap: float | None = None) -> PenalizedSolution:
        """Solve with the model's current costs and bounds, the penalty centred at ``centre``.

        ``abs_gap``: the MILP may stop this far from its optimum (default: the options'
        gap); the gap it stops at is part of the returned bound.
        """
        centre = np.asarray(centre, dtype=float)
        if self._penalty is None:
            try:
                x = self._miqp.solve(self.model, centre, rho)
            except QuadraticSolveError as exc:
                return PenalizedSolution(None, str(exc), float("nan"))
            return PenalizedSolution(x, "optimal", 0.0)
        self._penalty.set(self.model, centre, rho)
        self._highs.update(self.model)
        self._highs.set_mip_abs_gap(abs_gap)
        outcome = solve_lazily(self._highs, self._lazy, self.model.arrays.integer,
                               polish=True, restored=self._restored,
                               time_limit_s=self._highs.options.time_limit_s)
        res, x = outcome.result, outcome.x
        # binaries this step needed stay restored: the next step is a similar problem
        self._restored = np.flatnonzero(self._highs.integrality)
        if x is None:
            return PenalizedSolution(None, res.status.value, float("nan"))
        # a MILP stopped at its gap (or its time limit) is that far from its own optimum
        gap = res.objective - res.dual_bound if np.isfinite(res.dual_bound) else 0.0
        return PenalizedSolution(x, res.status.value,
                          self._penalty.bound(x[self.cols], centre, rho) + max(gap, 0.0))
