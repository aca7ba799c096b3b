"""Shared fixtures: tight solver options for exact comparisons."""

from __future__ import annotations

import pytest

from mosaik_bilevel.solvers.highs import SolverOptions

#: Optimality as tight as HiGHS allows, for comparisons with independent optima.
TIGHT = SolverOptions(mip_rel_gap=1e-9)


@pytest.fixture
def tight() -> SolverOptions:
    return TIGHT
