"""The package's entry points: solve a horizon, or consecutive horizons, of a case.

:func:`solve` takes a case (or a built-in name or folder) and a method from the registry
(:mod:`mosaik_bilevel.methods.registry`), solves, and validates the dispatch with
pandapower's AC power flow (``ac=False`` skips it); with ``compare_exact`` an LDD-ADMM
result is compared with the exact method on the same horizon
(:mod:`mosaik_bilevel.analysis.deviation`). The command line calls the same function, so
Python and the CLI write the same files.
"""

from __future__ import annotations

import pandas as pd

from .analysis.deviation import compare_with_exact
from .cases import as_case
from .data.case import Case
from .errors import CertificateError, OptionsError
from .methods.exact import Solver
from .methods.registry import SINGLE_LEVEL, method_name, solve_with
from .results.result import SolveResult
from .solvers.highs import SolverOptions


def solve(case: Case | str, method: str = "exact", pricing: str = "dlmp", *, start=None,
          options: SolverOptions | None = None, ac: bool = True,
          compare_exact: bool = False, ac_correction: int = 0,
          transformer: str | None = None, **kwargs) -> SolveResult:
    """Solve one horizon of ``case`` with ``method`` and check its dispatch in AC.

    ``method`` is ``exact``, ``hpr``, ``integrated``, ``standalone`` (keyword arguments as
    for :class:`~mosaik_bilevel.methods.exact.Solver`) or ``ldd_admm`` (keyword arguments
    as for :func:`~mosaik_bilevel.methods.ldd_admm.solve_ldd_admm`: ``backend``,
    ``workers``, and ``admm_options`` as :class:`~mosaik_bilevel.methods.ldd_admm.ADMMOptions`;
    ``options`` are then the HiGHS options of its steps). ``compare_exact`` (LDD-ADMM): also
    solve the exact method on the horizon and report the deviation. ``ac``: validate the
    dispatch with pandapower's AC power flow (``result.ac``, ``ac.csv``).
    ``ac_correction``: after the clearing, correct LinDistFlow where AC disagrees and clear
    again, at most this many times
    (:func:`~mosaik_bilevel.operation.ac_correction.clear_ac_corrected`; ``ac_correction.csv``).
    ``transformer``: model every community's transformer as ``regulated`` or ``fixed``
    (default: as the case has it).

    A single-level solution that fails the bilevel certificate raises
    :class:`~mosaik_bilevel.errors.CertificateError` (its result, AC check included, in
    ``.result``).

    Examples
    --------
    >>> result = solve("tiny", method="exact", pricing="dlmp")  # doctest: +SKIP
    >>> result.exchanges.head()  # doctest: +SKIP
    """
    case = as_case(case).with_transformer_model(transformer)
    method = method_name(method)
    attach_ac_check = _ac_check() if ac else None
    if ac_correction:
        return _solve_ac_corrected(case, method, pricing, start, options, ac, compare_exact,
                                   ac_correction, kwargs)
    if compare_exact:
        if method != "ldd_admm":
            raise OptionsError("compare_exact", "goes with method 'ldd_admm'")
        kwargs["compare"] = compare_with_exact
    try:
        result = solve_with(case, method, pricing, start=start, options=options, **kwargs)
    except CertificateError as exc:
        if ac and exc.result is not None:
            attach_ac_check(case, exc.result, options)
        raise
    if ac:
        attach_ac_check(case, result, options)
    return result


def solve_days(case: Case | str, method: str = "exact", pricing: str = "dlmp", *,
               days: int | None = None, options: SolverOptions | None = None,
               ac: bool = True, **kwargs) -> list[SolveResult]:
    """Solve consecutive horizons of ``case`` on one persistent model (single-level methods).

    Each horizon starts from the case's own initial state; ``ac`` as for :func:`solve`.
    """
    case = as_case(case)
    attach_ac_check = _ac_check() if ac else None
    solver = Solver(case, method_name(method, SINGLE_LEVEL), pricing, options=options, **kwargs)
    starts = case.days if days is None else case.days[:days]
    results = [solver.solve(pd.Timestamp(s)) for s in starts]
    if ac:
        for result in results:
            attach_ac_check(case, result, options)
    return results


def _solve_ac_corrected(case: Case, method: str, pricing: str, start, options, ac: bool,
                        compare_exact: bool, rounds: int, kwargs: dict) -> SolveResult:
    """:func:`solve` with an AC correction (single-level methods)."""
    from .operation.ac_correction import clear_ac_corrected

    if not ac:
        raise OptionsError("ac_correction", "needs the AC check (not with ac=False / --no-ac)")
    if method not in SINGLE_LEVEL or compare_exact:
        raise OptionsError("ac_correction", f"goes with the single-level methods "
                                            f"({', '.join(SINGLE_LEVEL)}), not {method!r}")
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 0:
        raise OptionsError("ac_correction", f"must be a whole number >= 0, got {rounds!r}")

    def clear(bounds):
        return solve_with(case, method, pricing, start=start, options=options,
                          ac_bounds=bounds, **kwargs)

    return clear_ac_corrected(case, clear, max_rounds=rounds, options=options)


def _ac_check():
    """The AC check, imported when used: pandapower takes 1.5 s to import, and ``import
    mosaik_bilevel`` stays at 0.6 s without it."""
    from .operation.ac_check import attach_ac_check

    return attach_ac_check
