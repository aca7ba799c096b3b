"""mosaik_bilevel: bilevel coordination of LV energy communities and the MV network.

The core (this package) imports no mosaik. Its folders are its layers, each importing only
those below it (docs/architecture.md): ``data`` (what a study is), ``cases`` (the built-in
catalogue), ``model`` (formulation, never solves), ``solvers`` (HiGHS, lazy binaries, the
MIQP path), ``results`` (what a solve returns and the output folders), ``methods`` (exact,
LDD-ADMM, the reference points), ``operation`` (rolling operation and the AC check),
``analysis`` (deviation, experiments, reports), and on top :mod:`.api` and :mod:`.cli`.
"""

from .api import solve, solve_days
from .cases import load_case
from .data.case import Case, Community, Substation
from .data.folder import save_case
from .errors import CaseError, CertificateError, ModelError, MosaikBilevelError
from .methods.exact import Solver
from .results.result import SolveResult
from .solvers.highs import SolverOptions, SolveStatus

__all__ = [
    "Case",
    "CaseError",
    "CertificateError",
    "Community",
    "ModelError",
    "MosaikBilevelError",
    "SolveResult",
    "SolveStatus",
    "Solver",
    "SolverOptions",
    "Substation",
    "load_case",
    "save_case",
    "solve",
    "solve_days",
]
__version__ = "0.1.0"
