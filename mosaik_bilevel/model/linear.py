"""A small vectorised container for linear and mixed-integer models in sparse matrix form.

Every formulation in the package (LinDistFlow, the follower LP, the leader MILP, the KKT
system) writes into a :class:`LinearModel`: blocks of variables and constraints whose ids are
numpy arrays, and coefficients added as broadcast triplets. The finished model is a set of
arrays (``lower <= x <= upper``, ``row_lower <= A x <= row_upper``, ``cost``, integrality) that
a solver backend takes over in one call. Nothing here knows about power systems.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

INF = np.inf
SENSES = ("==", "<=", ">=", "range")


def _coords(coords) -> tuple[pd.Index, ...]:
    if isinstance(coords, pd.Index):
        return (coords,)
    return tuple(c if isinstance(c, pd.Index) else pd.Index(c) for c in coords)


def _row_bounds(sense: str, rhs, shape) -> tuple[np.ndarray, np.ndarray]:
    """Row lower and upper bounds of a block of ``shape`` for ``sense`` and ``rhs``."""
    n = int(np.prod(shape, dtype=int))

    def flat(values):
        return np.broadcast_to(np.asarray(values, dtype=float), shape).ravel().copy()

    if sense == "range":
        lo, hi = (flat(v) for v in rhs)
        return lo, hi
    rhs = flat(rhs)
    lo = rhs if sense in ("==", ">=") else np.full(n, -INF)
    hi = rhs.copy() if sense in ("==", "<=") else np.full(n, INF)
    return lo, hi


def _shape(coords: tuple[pd.Index, ...]) -> tuple[int, ...]:
    return tuple(len(c) for c in coords)


@dataclass(frozen=True)
class Block:
    """A named block of variables or constraints laid out on labelled coordinates."""

    name: str
    ids: np.ndarray
    coords: tuple[pd.Index, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.ids.shape

    @property
    def size(self) -> int:
        return int(self.ids.size)

    def frame(self, values: np.ndarray, column: str) -> pd.DataFrame:
        """Tidy table of ``values`` (one per id) indexed by this block's coordinates."""
        values = np.asarray(values).reshape(self.shape)
        if len(self.coords) == 1:
            index = self.coords[0]
        else:
            index = pd.MultiIndex.from_product(self.coords)
        return pd.DataFrame({column: values.ravel()}, index=index)

    def table(self, values: np.ndarray) -> pd.DataFrame:
        """Wide table (rows: first coordinate, columns: second) of a two-dimensional block."""
        values = np.asarray(values).reshape(self.shape)
        if len(self.coords) != 2:
            raise ValueError(f"block {self.name!r} is not two-dimensional")
        return pd.DataFrame(values, index=self.coords[0], columns=self.coords[1])


@dataclass(frozen=True)
class Variables(Block):
    """Columns of a :class:`LinearModel`."""

    integer: bool = False
    parameter: bool = False


@dataclass(frozen=True)
class Constraints(Block):
    """Rows of a :class:`LinearModel`, all of one sense."""

    sense: str = "=="


@dataclass
class LinearModel:
    """Variables, constraints and a linear objective (minimised), built block by block.

    Columns may carry *implied* bounds: bounds that follow from the equality constraints and
    the declared bounds of other columns (for example a branch flow bounded by the injections
    below it), never from inequality rows. They are not constraints; they serve interval
    arithmetic (big-Ms, dropping rows that can never bind), and because they never rest on an
    inequality row, every row found redundant with them can be dropped at once.
    A *parameter* block is a block of columns fixed to given values; a parametric model
    (the follower, whose right-hand side moves with the leader's exchanges) marks the
    leader's decisions that way, and their implied bounds give the range they can take.
    """

    name: str = "model"
    variables: dict[str, Variables] = field(default_factory=dict)
    constraints: dict[str, Constraints] = field(default_factory=dict)
    objective_offset: float = 0.0

    def __post_init__(self):
        self._lower: list[np.ndarray] = []
        self._upper: list[np.ndarray] = []
        self._implied_lower: list[np.ndarray] = []
        self._implied_upper: list[np.ndarray] = []
        self._integer: list[np.ndarray] = []
        self._parameter: list[np.ndarray] = []
        self._row_lower: list[np.ndarray] = []
        self._row_upper: list[np.ndarray] = []
        self._rows: list[np.ndarray] = []
        self._cols: list[np.ndarray] = []
        self._vals: list[np.ndarray] = []
        self._cost_cols: list[np.ndarray] = []
        self._cost_vals: list[np.ndarray] = []
        self._terms: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._cpart: dict[str, int] = {}
        self._part: dict[str, int] = {}
        self.n_cols = 0
        self.n_rows = 0
        self._arrays: ModelArrays | None = None
        self._matrix: sp.csc_matrix | None = None  # kept while only bounds and costs change

    # -- building --------------------------------------------------------------------------
    def add_variables(
        self,
        name: str,
        coords,
        lower=-INF,
        upper=INF,
        *,
        integer: bool = False,
        parameter: bool = False,
        implied_lower=None,
        implied_upper=None,
    ) -> Variables:
        """Add a block of columns with the given bounds (scalars or arrays of its shape)."""
        if name in self.variables:
            raise ValueError(f"variable block {name!r} exists already")
        coords = _coords(coords)
        shape = _shape(coords)
        n = int(np.prod(shape, dtype=int))
        ids = np.arange(self.n_cols, self.n_cols + n).reshape(shape)
        lower = np.broadcast_to(np.asarray(lower, dtype=float), shape).ravel()
        upper = np.broadcast_to(np.asarray(upper, dtype=float), shape).ravel()
        if np.any(lower > upper + 1e-12):
            raise ValueError(f"variable block {name!r}: a lower bound exceeds its upper bound")
        il = np.full(n, -INF) if implied_lower is None else np.broadcast_to(
            np.asarray(implied_lower, dtype=float), shape).ravel()
        iu = np.full(n, INF) if implied_upper is None else np.broadcast_to(
            np.asarray(implied_upper, dtype=float), shape).ravel()
        self._part[name] = len(self._lower)
        self._lower.append(lower.copy())
        self._upper.append(upper.copy())
        self._implied_lower.append(np.asarray(il, dtype=float).copy())
        self._implied_upper.append(np.asarray(iu, dtype=float).copy())
        self._integer.append(np.full(n, integer))
        self._parameter.append(np.full(n, parameter))
        self.n_cols += n
        block = Variables(name, ids, coords, integer=integer, parameter=parameter)
        self.variables[name] = block
        self._arrays = self._matrix = None
        return block

    def add_constraints(self, name: str, coords, sense: str, rhs=0.0) -> Constraints:
        """Add a block of rows ``(terms) sense rhs``; fill the terms with :meth:`add_terms`.

        ``sense="range"`` takes ``rhs=(lower, upper)``: rows ``lower <= (terms) <= upper``.
        """
        if name in self.constraints:
            raise ValueError(f"constraint block {name!r} exists already")
        if sense not in SENSES:
            raise ValueError(f"unknown sense {sense!r}")
        coords = _coords(coords)
        shape = _shape(coords)
        n = int(np.prod(shape, dtype=int))
        ids = np.arange(self.n_rows, self.n_rows + n).reshape(shape)
        lo, hi = _row_bounds(sense, rhs, shape)
        self._cpart[name] = len(self._row_lower)
        self._row_lower.append(np.array(lo))
        self._row_upper.append(np.array(hi))
        self.n_rows += n
        block = Constraints(name, ids, coords, sense=sense)
        self.constraints[name] = block
        self._arrays = self._matrix = None
        return block

    def add_terms(self, rows, cols, coefs=1.0) -> None:
        """Add coefficients ``A[rows, cols] += coefs`` (all three broadcast together)."""
        rows, cols, coefs = np.broadcast_arrays(
            np.asarray(rows), np.asarray(cols), np.asarray(coefs, dtype=float))
        keep = coefs.ravel() != 0.0
        self._rows.append(rows.ravel()[keep].astype(np.int64))
        self._cols.append(cols.ravel()[keep].astype(np.int64))
        self._vals.append(coefs.ravel()[keep].astype(float))
        self._arrays = self._matrix = None

    def add_objective(self, cols, coefs) -> None:
        """Add ``coefs · x[cols]`` to the objective (broadcast)."""
        cols, coefs = np.broadcast_arrays(np.asarray(cols), np.asarray(coefs, dtype=float))
        self._cost_cols.append(cols.ravel().astype(np.int64))
        self._cost_vals.append(coefs.ravel().astype(float))
        self._arrays = None

    def set_objective_term(self, name: str, cols, coefs) -> None:
        """Set a named objective term ``coefs · x[cols]``, replacing the term of that name.

        Iterative methods keep their changing terms (multipliers, penalty weights) here.
        """
        cols, coefs = np.broadcast_arrays(np.asarray(cols), np.asarray(coefs, dtype=float))
        self._terms[name] = (cols.ravel().astype(np.int64), coefs.ravel().astype(float))
        self._arrays = None

    def replace_objective(self, cols, coefs) -> None:
        """Drop the whole objective (terms and offset) for ``coefs · x[cols]``."""
        self._cost_cols, self._cost_vals, self._terms = [], [], {}
        self.objective_offset = 0.0
        self.add_objective(cols, coefs)

    def set_rhs(self, block: Constraints, rhs) -> None:
        """Change the right-hand sides of a constraint block (``(lower, upper)`` of a range)."""
        part = self._cpart[block.name]
        lo, hi = _row_bounds(block.sense, rhs, block.shape)
        if block.sense != "<=":
            self._row_lower[part] = lo
        if block.sense != ">=":
            self._row_upper[part] = hi
        self._arrays = None

    # -- finished arrays -------------------------------------------------------------------
    @property
    def arrays(self) -> ModelArrays:
        """The finished model as arrays (cached until the next change)."""
        if self._arrays is None:
            self._arrays = self._assemble()
        return self._arrays

    def _assemble(self) -> ModelArrays:
        def cat(parts, dtype=float):
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

        cost = np.zeros(self.n_cols)
        cols = self._cost_cols + [c for c, _v in self._terms.values()]
        vals = self._cost_vals + [v for _c, v in self._terms.values()]
        if cols:
            np.add.at(cost, cat(cols, np.int64), cat(vals))
        if self._matrix is None:
            matrix = sp.csc_matrix(
                (cat(self._vals), (cat(self._rows, np.int64), cat(self._cols, np.int64))),
                shape=(self.n_rows, self.n_cols),
            )
            matrix.sum_duplicates()
            matrix.eliminate_zeros()
            matrix.sort_indices()
            self._matrix = matrix
        matrix = self._matrix
        def snap(values):  # floating-point noise (1e-25) is zero, not a tiny bound
            values = values.copy()
            values[np.abs(values) < 1e-13] = 0.0
            return values

        return ModelArrays(
            matrix=matrix,
            cost=cost,
            offset=float(self.objective_offset),
            col_lower=snap(cat(self._lower)),
            col_upper=snap(cat(self._upper)),
            row_lower=snap(cat(self._row_lower)),
            row_upper=snap(cat(self._row_upper)),
            integer=cat(self._integer, bool),
            parameter=cat(self._parameter, bool),
            implied_lower=cat(self._implied_lower),
            implied_upper=cat(self._implied_upper),
        )

    def fix_parameter(self, block: Variables, values) -> None:
        """Set the values of a parameter block (its columns' bounds)."""
        if not block.parameter:
            raise ValueError(f"block {block.name!r} is not a parameter block")
        self.set_bounds(block, values, values)

    def tighten_implied_bounds(self, block: Variables, lower=None, upper=None) -> None:
        """Intersect a block's implied bounds with further valid ones."""
        part = self._part[block.name]
        for parts, new, pick in ((self._implied_lower, lower, np.maximum),
                                 (self._implied_upper, upper, np.minimum)):
            if new is not None:
                new = np.broadcast_to(np.asarray(new, dtype=float), block.shape).ravel()
                parts[part] = pick(parts[part], new)
        self._arrays = None

    def set_bounds(self, block: Variables, lower=None, upper=None) -> None:
        """Change the bounds of a variable block after it was added."""
        part = self._part[block.name]
        for parts, new in ((self._lower, lower), (self._upper, upper)):
            if new is not None:
                parts[part] = np.broadcast_to(
                    np.asarray(new, dtype=float), block.shape).ravel().copy()
        self._arrays = None

    # -- sizes -----------------------------------------------------------------------------
    def size(self) -> ModelSize:
        """Counts of variables, binaries/integers, constraints and non-zeros."""
        a = self.arrays
        return ModelSize(
            variables=self.n_cols,
            integers=int(a.integer.sum()),
            constraints=self.n_rows,
            nonzeros=int(a.matrix.nnz),
        )


@dataclass(frozen=True)
class ModelSize:
    """Size of a model."""

    variables: int
    integers: int
    constraints: int
    nonzeros: int


@dataclass
class ModelArrays:
    """A finished model: ``min cost·x + offset`` s.t. bounds on rows and columns."""

    matrix: sp.csc_matrix
    cost: np.ndarray
    offset: float
    col_lower: np.ndarray
    col_upper: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    integer: np.ndarray
    parameter: np.ndarray
    implied_lower: np.ndarray
    implied_upper: np.ndarray

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounds every feasible point satisfies: declared bounds within implied ones.

        Parameter columns take their implied range (their declared bounds are the value of
        the moment).
        """
        lo = np.maximum(self.col_lower, self.implied_lower)
        hi = np.minimum(self.col_upper, self.implied_upper)
        lo = np.where(self.parameter, self.implied_lower, lo)
        hi = np.where(self.parameter, self.implied_upper, hi)
        return lo, hi

    def same_structure(self, other: ModelArrays) -> bool:
        """True when both have the same sparsity pattern, integrality and infinite bounds."""
        a, b = self.matrix, other.matrix
        return (
            a.shape == b.shape
            and a.nnz == b.nnz
            and np.array_equal(a.indptr, b.indptr)
            and np.array_equal(a.indices, b.indices)
            and np.array_equal(self.integer, other.integer)
        )
