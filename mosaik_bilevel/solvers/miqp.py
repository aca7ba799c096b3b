"""A linear model plus an exact quadratic penalty, solved by a MIQP-capable solver via Pyomo.

HiGHS has no MIQP, so LDD-ADMM normally represents its penalty ρ/2 ‖x − c‖² by tangents
(:mod:`mosaik_bilevel.model.penalty`). A user with a solver that handles mixed-integer quadratic
objectives names it (a Pyomo solver name such as ``scip``, ``gurobi_direct`` or
``cplex_direct``) and the steps minimise ``cost·x + ρ/2 ‖x[cols] − c‖²`` exactly.

The Pyomo model is built once per horizon from the model's arrays; between iterations only
mutable parameters change (costs, centre, ρ). A change of the matrix (the coordinator's dual
big-Ms enlarged) rebuilds it.
"""

from __future__ import annotations

import numpy as np

from ..errors import OptionsError
from ..model.linear import LinearModel
from .highs import SolverOptions


def check_miqp_solver(solver: str):
    """The Pyomo solver ``solver``; raises :class:`OptionsError` if Pyomo cannot run it."""
    import pyomo.environ as pyo

    candidate, available = None, False
    if solver in pyo.SolverFactory:  # registered names only (no search for executables)
        try:
            candidate = pyo.SolverFactory(solver)
            available = bool(candidate.available(exception_flag=False))
        except Exception:  # a registered interface whose library is missing
            available = False
    if not available:
        raise OptionsError("miqp_solver", f"{solver!r} is not a MIQP solver Pyomo can run "
                           f"here (e.g. scip_direct with pip install mosaik-bilevel[miqp]); "
                           f"leave it unset to use HiGHS with the piecewise-linear penalty")
    return candidate


class QuadraticSolveError(RuntimeError):
    """The MIQP solver did not return an optimal solution."""


class PyomoMIQP:
    """Minimise ``cost·x + ρ/2 ‖x[cols] − c‖²`` over a :class:`LinearModel` with Pyomo.

    Parameters
    ----------
    solver
        A Pyomo solver name that handles mixed-integer quadratic objectives.
    options
        MIP gap and time limit are passed on where the solver accepts them.
    """

    def __init__(self, solver: str, options: SolverOptions | None = None):
        import pyomo.environ as pyo

        self._pyo = pyo
        self.solver_name = solver
        self.options = options or SolverOptions()
        self._solver = check_miqp_solver(solver)
        self._matrix = None

    def load(self, model: LinearModel, cols: np.ndarray) -> None:
        """Build the Pyomo model of ``model`` with the quadratic on the columns ``cols``."""
        pyo = self._pyo
        a = model.arrays
        self._matrix = a.matrix
        self._cols = np.asarray(cols).ravel()
        n = a.matrix.shape[1]
        m = pyo.ConcreteModel()
        lower = [None if not np.isfinite(v) else float(v) for v in a.col_lower]
        upper = [None if not np.isfinite(v) else float(v) for v in a.col_upper]

        def domain(_m, j):
            if not a.integer[j]:
                return pyo.Reals
            return pyo.Binary if lower[j] == 0.0 and upper[j] == 1.0 else pyo.Integers

        m.x = pyo.Var(range(n), domain=domain, bounds=lambda _m, j: (lower[j], upper[j]))
        csr = a.matrix.tocsr()
        m.rows = pyo.ConstraintList()
        for i in range(csr.shape[0]):
            start, end = csr.indptr[i], csr.indptr[i + 1]
            expr = pyo.quicksum(float(v) * m.x[int(j)]
                                for j, v in zip(csr.indices[start:end], csr.data[start:end],
                                                strict=True))
            lo = a.row_lower[i] if np.isfinite(a.row_lower[i]) else None
            hi = a.row_upper[i] if np.isfinite(a.row_upper[i]) else None
            if start == end:
                continue
            if lo is not None and hi is not None and lo == hi:
                m.rows.add(expr == float(lo))
            else:
                m.rows.add((None if lo is None else float(lo), expr,
                            None if hi is None else float(hi)))
        self._active = np.union1d(np.flatnonzero(a.cost), self._cols)
        m.cost = pyo.Param(range(len(self._active)), mutable=True, initialize=0.0)
        m.centre = pyo.Param(range(self._cols.size), mutable=True, initialize=0.0)
        m.rho = pyo.Param(mutable=True, initialize=0.0)
        m.obj = pyo.Objective(
            expr=pyo.quicksum(m.cost[k] * m.x[int(j)] for k, j in enumerate(self._active))
            + m.rho / 2 * pyo.quicksum((m.x[int(j)] - m.centre[k]) ** 2
                                       for k, j in enumerate(self._cols)),
            sense=pyo.minimize)
        self._m = m

    def solve(self, model: LinearModel, centre: np.ndarray, rho: float) -> np.ndarray:
        """Solve with the model's current costs; returns x (raises when not optimal)."""
        a = model.arrays
        if a.matrix is not self._matrix:
            self.load(model, self._cols)
        if np.any(a.cost[np.setdiff1d(np.arange(a.cost.size), self._active)] != 0.0):
            self.load(model, self._cols)
        m = self._m
        for k, j in enumerate(self._active):
            m.cost[k] = float(a.cost[j])
        for k, c in enumerate(np.asarray(centre, dtype=float).ravel()):
            m.centre[k] = float(c)
        m.rho = float(rho)
        for j in range(a.col_lower.size):  # bounds may move between horizons
            lo, hi = a.col_lower[j], a.col_upper[j]
            m.x[j].setlb(None if not np.isfinite(lo) else float(lo))
            m.x[j].setub(None if not np.isfinite(hi) else float(hi))
        options = {}
        if self.solver_name.startswith("scip"):
            options["limits/gap"] = self.options.mip_rel_gap
            options["limits/absgap"] = self.options.mip_abs_gap
            if np.isfinite(self.options.time_limit_s):
                options["limits/time"] = self.options.time_limit_s
        result = self._solver.solve(m, options=options, load_solutions=False)
        tc = result.solver.termination_condition
        if str(tc) != "optimal":
            raise QuadraticSolveError(f"{self.solver_name}: {tc}")
        m.solutions.load_from(result)
        return np.array([m.x[j].value if m.x[j].value is not None else 0.0
                         for j in range(a.col_lower.size)], dtype=float)
