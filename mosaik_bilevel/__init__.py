"""mosaik_bilevel: bilevel coordination of LV energy communities and the MV network.

The core (this package) imports no mosaik: case data (:mod:`.case`, :mod:`.case_io`),
formulation (:mod:`.lindistflow`, :mod:`.community`, :mod:`.follower`, :mod:`.kkt`,
:mod:`.formulation`), solving (:mod:`.highs`, :mod:`.solve`, :mod:`.certificate`) and results
(:mod:`.results`).
"""

from .data.case import Case, Community, Substation
from .data.folder import load_case, save_case
from .errors import CaseError, CertificateError, ModelError, MosaikBilevelError
from .methods.exact import Solver, solve, solve_days
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
