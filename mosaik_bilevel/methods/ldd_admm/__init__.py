"""The distributed LDD-ADMM method (model.md §6): communities, coordinator, backends."""

from .agent import CommunityAgent
from .algorithm import ADMMOptions, solve_ldd_admm
from .backends import BACKENDS, DaskBackend, ProcessBackend, SequentialBackend, backend
from .coordinator import Coordinator
from .step import PenaltySpec

__all__ = [
           "BACKENDS",
           "ADMMOptions",
           "CommunityAgent",
           "Coordinator",
           "DaskBackend",
           "PenaltySpec",
           "ProcessBackend",
           "SequentialBackend",
           "backend",
           "solve_ldd_admm",
]
