"""mosaik_bilevel: bilevel coordination of LV energy communities and the MV network.

The core (this package) imports no mosaik: case data (:mod:`.case`, :mod:`.case_io`),
formulation (:mod:`.lindistflow`, :mod:`.community`, :mod:`.follower`, :mod:`.kkt`,
:mod:`.formulation`), solving (:mod:`.highs`, :mod:`.solve`, :mod:`.certificate`) and results
(:mod:`.results`).
"""

from .case import Case, Community, Substation
from .case_io import load_case, save_case
from .errors import CaseError, CertificateError, ModelError, MosaikBilevelError
from .highs import SolverOptions, SolveStatus
from .results import SolveResult
from .solve import Solver, solve, solve_days

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
