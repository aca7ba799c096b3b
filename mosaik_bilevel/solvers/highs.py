"""Solving a :class:`~mosaik_bilevel.model.linear.LinearModel` with HiGHS through highspy's arrays.

The model is handed over once (``passModel`` with the sparse arrays); a later model with the
same structure (a following day, an updated iterate) is pushed as changed bounds, costs and
coefficients only, so HiGHS keeps its model. Outcomes that are not optimal (infeasible, time
limit, ...) come back as a :class:`HighsResult` with a status, never as an exception.
"""

from __future__ import annotations

import enum
import os
import sys
import time
from dataclasses import dataclass, field

import highspy
import numpy as np

from ..errors import OptionsError
from ..model.linear import LinearModel, ModelArrays


class SolveStatus(enum.Enum):
    """Outcome of one solve."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    TIME_LIMIT = "time_limit"
    ERROR = "error"

    @property
    def ok(self) -> bool:
        return self is SolveStatus.OPTIMAL


#: HiGHS's heuristics that each solve a sub-MIP.
SUB_MIP_HEURISTICS = ("mip_heuristic_run_rens", "mip_heuristic_run_rins",
                      "mip_heuristic_run_root_reduced_cost")


def _check_option(name: str, value, *, low: float, strict: bool = False,
                  allow_inf: bool = False) -> None:
    """A number ``>= low`` (``> low`` if ``strict``), finite unless ``allow_inf``."""
    ok = (isinstance(value, (int, float, np.integer, np.floating))
          and not isinstance(value, bool) and not np.isnan(value)
          and (allow_inf or np.isfinite(value)) and (value > low if strict else value >= low))
    if not ok:
        raise OptionsError(name, f"must be a {'' if allow_inf else 'finite '}number "
                                 f"{'>' if strict else '>='} {low:g}, got {value!r}")


@dataclass(frozen=True)
class SolverOptions:
    """Options passed to HiGHS (``threads`` is fixed once per process by HiGHS itself).

    ``mip_allow_restart`` is off by default: on the paper case (four days, 1 h steps) HiGHS's
    root restarts cost 2.4x the total solve time (141 s against 59 s, one run each).
    ``mip_sub_mip_heuristics`` switches HiGHS's heuristics that solve sub-MIPs (RENS, RINS,
    root reduced cost); LDD-ADMM's steps turn them off (see ``ADMMOptions``).
    """

    mip_rel_gap: float = 1e-4
    mip_abs_gap: float = 1e-6
    time_limit_s: float = float("inf")
    threads: int | None = None
    presolve: bool = True
    primal_feasibility_tolerance: float = 1e-8
    dual_feasibility_tolerance: float = 1e-8
    mip_feasibility_tolerance: float = 1e-7
    mip_allow_restart: bool = False
    mip_sub_mip_heuristics: bool = True
    log: bool = False

    def __post_init__(self):
        """Refuse what HiGHS would refuse later, or take silently: a negative or non-finite
        gap or tolerance, a negative time limit, fewer than one thread."""
        for name in ("mip_rel_gap", "mip_abs_gap"):
            _check_option(name, getattr(self, name), low=0.0)
        for name in ("primal_feasibility_tolerance", "dual_feasibility_tolerance",
                     "mip_feasibility_tolerance"):
            _check_option(name, getattr(self, name), low=0.0, strict=True)
        _check_option("time_limit_s", self.time_limit_s, low=0.0, allow_inf=True)
        if self.threads is not None and (
                not isinstance(self.threads, (int, np.integer)) or isinstance(self.threads, bool)
                or self.threads < 1):
            raise OptionsError("threads", f"must be a whole number >= 1, got {self.threads!r}")

    def apply(self, h: highspy.Highs) -> None:
        """Set these options on ``h``; an option HiGHS rejects raises ``ValueError``."""
        values = {
            "output_flag": bool(self.log),
            "mip_rel_gap": float(self.mip_rel_gap),
            "mip_abs_gap": float(self.mip_abs_gap),
            "presolve": "on" if self.presolve else "off",
            "primal_feasibility_tolerance": float(self.primal_feasibility_tolerance),
            "dual_feasibility_tolerance": float(self.dual_feasibility_tolerance),
            "mip_feasibility_tolerance": float(self.mip_feasibility_tolerance),
            "mip_allow_restart": bool(self.mip_allow_restart),
            **{name: bool(self.mip_sub_mip_heuristics) for name in SUB_MIP_HEURISTICS},
        }
        if np.isfinite(self.time_limit_s):
            values["time_limit"] = float(self.time_limit_s)
        if self.threads is not None:
            values["threads"] = int(self.threads)
        for name, value in values.items():
            if h.setOptionValue(name, value) == highspy.HighsStatus.kError:
                raise ValueError(f"HiGHS rejects option {name}={value!r}")


@dataclass
class HighsResult:
    """Values and statistics of one solve."""

    status: SolveStatus
    message: str
    objective: float = float("nan")
    x: np.ndarray | None = None
    row_duals: np.ndarray | None = None
    col_duals: np.ndarray | None = None
    mip_gap: float = float("nan")
    dual_bound: float = float("nan")
    solve_time_s: float = 0.0
    nodes: int = 0
    info: dict = field(default_factory=dict)

    @property
    def has_solution(self) -> bool:
        return self.x is not None


_STATUS = {
    highspy.HighsModelStatus.kOptimal: SolveStatus.OPTIMAL,
    highspy.HighsModelStatus.kInfeasible: SolveStatus.INFEASIBLE,
    highspy.HighsModelStatus.kUnbounded: SolveStatus.UNBOUNDED,
    highspy.HighsModelStatus.kUnboundedOrInfeasible: SolveStatus.INFEASIBLE,
    highspy.HighsModelStatus.kTimeLimit: SolveStatus.TIME_LIMIT,
    highspy.HighsModelStatus.kIterationLimit: SolveStatus.TIME_LIMIT,
    highspy.HighsModelStatus.kSolutionLimit: SolveStatus.TIME_LIMIT,
    highspy.HighsModelStatus.kInterrupt: SolveStatus.TIME_LIMIT,
}


_BANNER_SHOWN = False


def _new_highs() -> highspy.Highs:
    """A Highs instance; the first one of a process prints a banner to the C-level stdout,
    which is sent to /dev/null (a library should not print)."""
    global _BANNER_SHOWN
    if _BANNER_SHOWN:
        return highspy.Highs()
    _BANNER_SHOWN = True
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no real stdout (e.g. captured): nothing to hide
        return highspy.Highs()
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            return highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


class HighsSolver:
    """A persistent HiGHS instance holding one model.

    Parameters
    ----------
    options
        Solver options; applied at construction and after every :meth:`load`.
    """

    def __init__(self, options: SolverOptions | None = None):
        self.options = options or SolverOptions()
        self._h = _new_highs()
        self._h.silent()
        self.options.apply(self._h)
        self._arrays: ModelArrays | None = None
        self._integrality = np.zeros(0, dtype=bool)
        self._is_mip = False
        self.handover_time_s = 0.0

    @property
    def highs(self) -> highspy.Highs:
        return self._h

    def set_mip_abs_gap(self, gap: float | None) -> None:
        """The absolute MIP gap of the following solves (``None``: the options' own)."""
        value = self.options.mip_abs_gap if gap is None else float(gap)
        if self._h.setOptionValue("mip_abs_gap", value) == highspy.HighsStatus.kError:
            raise ValueError(f"HiGHS rejects option mip_abs_gap={value!r}")

    def set_time_limit(self, seconds: float | None) -> None:
        """The time limit of the following solves (``None``: the options' own)."""
        value = self.options.time_limit_s if seconds is None else float(seconds)
        value = value if np.isfinite(value) else highspy.kHighsInf
        if self._h.setOptionValue("time_limit", value) == highspy.HighsStatus.kError:
            raise ValueError(f"HiGHS rejects option time_limit={value!r}")

    # -- model hand-over -------------------------------------------------------------------
    def load(self, model: LinearModel | ModelArrays) -> float:
        """Hand a model to HiGHS, replacing the one it holds; returns the seconds it took."""
        a = model.arrays if isinstance(model, LinearModel) else model
        t0 = time.perf_counter()
        m = a.matrix
        integrality = a.integer.astype(np.int32)
        self._h.clearModel()
        self._h.passModel(
            int(m.shape[1]), int(m.shape[0]), int(m.nnz),
            int(highspy.MatrixFormat.kColwise), int(highspy.ObjSense.kMinimize),
            float(a.offset),
            np.ascontiguousarray(a.cost, dtype=np.float64),
            np.ascontiguousarray(a.col_lower, dtype=np.float64),
            np.ascontiguousarray(a.col_upper, dtype=np.float64),
            np.ascontiguousarray(a.row_lower, dtype=np.float64),
            np.ascontiguousarray(a.row_upper, dtype=np.float64),
            np.ascontiguousarray(m.indptr, dtype=np.int32),
            np.ascontiguousarray(m.indices, dtype=np.int32),
            np.ascontiguousarray(m.data, dtype=np.float64),
            integrality,
        )
        self._arrays = a
        self._integrality = a.integer.copy()
        self._is_mip = bool(a.integer.any())
        self.handover_time_s = time.perf_counter() - t0
        return self.handover_time_s

    def update(self, model: LinearModel | ModelArrays) -> float:
        """Push a model of the same structure as changes; reload when the structure differs.

        Returns the seconds the hand-over took.
        """
        a = model.arrays if isinstance(model, LinearModel) else model
        old = self._arrays
        if old is None or not old.same_structure(a):
            return self.load(a)
        t0 = time.perf_counter()
        h = self._h
        changed = np.flatnonzero(
            (old.col_lower != a.col_lower) | (old.col_upper != a.col_upper))
        if changed.size:
            h.changeColsBounds(changed.size, changed.astype(np.int32),
                               a.col_lower[changed], a.col_upper[changed])
        changed = np.flatnonzero(old.cost != a.cost)
        if changed.size:
            h.changeColsCost(changed.size, changed.astype(np.int32), a.cost[changed])
        changed = np.flatnonzero(
            (old.row_lower != a.row_lower) | (old.row_upper != a.row_upper))
        if changed.size:
            h.changeRowsBounds(changed.size, changed.astype(np.int32),
                               a.row_lower[changed], a.row_upper[changed])
        if a.offset != old.offset:
            h.changeObjectiveOffset(a.offset)
        diff = np.flatnonzero(old.matrix.data != a.matrix.data)
        if diff.size:
            cols = np.searchsorted(a.matrix.indptr, diff, side="right") - 1
            rows = a.matrix.indices[diff]
            for r, c, v in zip(rows.tolist(), cols.tolist(), a.matrix.data[diff].tolist(),
                               strict=True):
                h.changeCoeff(r, c, v)
        self._arrays = a
        self.handover_time_s = time.perf_counter() - t0
        return self.handover_time_s

    @property
    def integrality(self) -> np.ndarray:
        """Which columns HiGHS currently treats as integer."""
        return self._integrality

    def set_integrality(self, integer: np.ndarray) -> None:
        """Change which columns are integer (kept until changed again or a new model)."""
        integer = np.asarray(integer, dtype=bool)
        idx = np.arange(integer.size, dtype=np.int32)
        self._h.changeColsIntegrality(idx.size, idx, integer.astype(np.uint8))
        self._integrality = integer.copy()
        self._is_mip = bool(integer.any())

    def solve_fixed(self, cols: np.ndarray, values: np.ndarray) -> HighsResult:
        """Solve the LP with ``cols`` fixed at ``values`` and no integers, then restore."""
        a = self._arrays
        cols = np.asarray(cols, dtype=np.int32)
        self._h.changeColsBounds(cols.size, cols, np.asarray(values, float),
                                 np.asarray(values, float))
        kept = self._integrality
        self.set_integrality(np.zeros_like(kept))
        try:
            return self.solve(duals=False)
        finally:
            self._h.changeColsBounds(cols.size, cols, a.col_lower[cols], a.col_upper[cols])
            self.set_integrality(kept)

    def solve_relaxation(self) -> HighsResult:
        """Solve the LP relaxation of the loaded model, then restore its integers."""
        return self.solve_fixed(np.zeros(0, dtype=np.int32), np.zeros(0))

    # -- solving ---------------------------------------------------------------------------
    def solve(self, *, duals: bool = True) -> HighsResult:
        """Solve the loaded model; LP duals are returned for continuous models."""
        h = self._h
        t0 = time.perf_counter()
        h.run()
        elapsed = time.perf_counter() - t0
        ms = h.getModelStatus()
        status = _STATUS.get(ms, SolveStatus.ERROR)
        info = h.getInfo()
        result = HighsResult(
            status=status,
            message=h.modelStatusToString(ms),
            solve_time_s=elapsed,
            nodes=int(getattr(info, "mip_node_count", 0) or 0),
        )
        is_mip = self._is_mip
        has_primal = int(info.primal_solution_status) == 2  # kSolutionStatusFeasible
        if has_primal:
            sol = h.getSolution()
            result.x = np.asarray(sol.col_value, dtype=float)
            result.objective = float(info.objective_function_value)
            if not is_mip and duals and sol.dual_valid:
                result.row_duals = np.asarray(sol.row_dual, dtype=float)
                result.col_duals = np.asarray(sol.col_dual, dtype=float)
        if is_mip:
            result.mip_gap = float(info.mip_gap)
            result.dual_bound = float(info.mip_dual_bound)
        else:
            result.mip_gap = 0.0 if status.ok else float("nan")
        return result


def solve_model(model: LinearModel, options: SolverOptions | None = None) -> HighsResult:
    """Load and solve a model once."""
    solver = HighsSolver(options)
    solver.load(model)
    return solver.solve()
