"""The methods a horizon can be solved with, by name: one registry for the API, the CLI and
the market operator.

- ``exact``: the bilevel problem as one MILP (the follower replaced by its KKT conditions);
- ``hpr``, ``integrated``, ``standalone``: reference points (the high-point relaxation, the
  system optimum, the communities against the tariff);
- ``ldd_admm``: the bilevel problem solved distributed (each community in private).

Names are accepted with ``-`` or ``_`` (``ldd-admm`` on the command line).
"""

from __future__ import annotations

from ..data.case import Case
from ..errors import OptionsError
from ..model.formulation import METHODS as SINGLE_LEVEL
from ..model.formulation import PRICINGS
from ..results.result import SolveResult
from ..solvers.highs import SolverOptions
from .exact import Solver
from .ldd_admm import solve_ldd_admm

#: Every method, single-level ones first.
METHODS: tuple[str, ...] = (*SINGLE_LEVEL, "ldd_admm")
#: Methods the market operator clears with (the two that solve the bilevel problem).
CLEARING_METHODS: tuple[str, ...] = ("exact", "ldd_admm")

__all__ = ["CLEARING_METHODS", "METHODS", "PRICINGS", "SINGLE_LEVEL", "cli_choices",
           "method_name", "solve_with"]


def method_name(name: str, allowed: tuple[str, ...] = METHODS) -> str:
    """The registry's name of a method (``ldd-admm`` → ``ldd_admm``); raises
    :class:`~mosaik_bilevel.errors.OptionsError` for one not in ``allowed``."""
    key = str(name).strip().lower().replace("-", "_")
    if key not in allowed:
        raise OptionsError("method", f"unknown method {name!r}; choose one of "
                                     f"{', '.join(allowed)}")
    return key


def pricing_name(name: str) -> str:
    """A pricing mode (``dlmp`` or ``tariff``); raises for another."""
    if name not in PRICINGS:
        raise OptionsError("pricing", f"unknown pricing {name!r}; choose one of "
                                      f"{', '.join(PRICINGS)}")
    return name


def cli_choices(allowed: tuple[str, ...] = METHODS) -> list[str]:
    """Method names as the command line accepts them (both spellings)."""
    return [*allowed, *(m.replace("_", "-") for m in allowed if "_" in m)]


def solve_with(case: Case, method: str, pricing: str = "dlmp", *, start=None,
               options: SolverOptions | None = None, **kwargs) -> SolveResult:
    """Solve one horizon of ``case`` with the named method.

    Keyword arguments go to :class:`~mosaik_bilevel.methods.exact.Solver` (single-level
    methods) or to :func:`~mosaik_bilevel.methods.ldd_admm.solve_ldd_admm` (``backend``,
    ``workers``, ``admm_options`` as its ``options``, ``compare``; ``options`` are then the
    HiGHS options of its steps).
    """
    method = method_name(method)
    pricing = pricing_name(pricing)
    if method == "ldd_admm":
        admm = kwargs.pop("admm_options", None)
        return solve_ldd_admm(case, pricing, start=start, options=admm,
                              solver_options=options, **kwargs)
    state = {k: kwargs.pop(k) for k in ("n_periods", "initial_energy_mwh", "shiftable_done",
                                        "p_init_mw", "ac_bounds") if k in kwargs}
    return Solver(case, method, pricing, options=options, **kwargs).solve(start, **state)
