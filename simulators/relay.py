"""LDD-ADMM inside a co-simulation: the method's calls to the communities become mosaik
passes, answered by the community simulators where the communities' data live.

:class:`RelayBackend` is the market operator simulator's backend: the method runs in a
thread, posts each call, and the simulator hands it to the community simulators and the
answers back. :class:`AgentTerms` are the public terms an agent is built with in the
community simulator (plain values, sent with the ``open`` call).
"""

from __future__ import annotations

import dataclasses
import queue
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mosaik_bilevel.data.case import Community, CommunitySettings
from mosaik_bilevel.methods.ldd_admm.agent import CommunityAgent
from mosaik_bilevel.methods.ldd_admm.backends import AgentSpec, Backend, check_method
from mosaik_bilevel.methods.ldd_admm.coupling import VoltageCoupling
from mosaik_bilevel.methods.ldd_admm.step import PenaltySpec
from mosaik_bilevel.solvers.highs import SolverOptions


@dataclass(frozen=True)
class AgentTerms:
    """The public terms every community agent of a run is built with (plain values)."""

    pricing: str
    options: dict
    penalty: dict
    coupling: dict | None = None  # the MV voltage's consensus terms (fixed transformers)

    @classmethod
    def of(cls, spec: AgentSpec) -> AgentTerms:
        return cls(spec.pricing, dataclasses.asdict(spec.options),
                   dataclasses.asdict(spec.penalty),
                   None if spec.coupling is None else dataclasses.asdict(spec.coupling))

    def build(self, community: Community, settings: CommunitySettings,
              tariff: pd.DataFrame | None) -> CommunityAgent:
        """The agent, where the community's own data lives."""
        return CommunityAgent(community, settings, pricing=self.pricing,
                              tariff=tariff if self.pricing == "tariff" else None,
                              options=SolverOptions(**self.options),
                              penalty=PenaltySpec(**self.penalty),
                              coupling=None if self.coupling is None else VoltageCoupling(
                                  **self.coupling))


class RelayBackend(Backend):
    """Hands every call to whoever holds the agents elsewhere, and waits for the replies.

    For a co-simulation: the method runs in a thread of the market operator's simulator;
    :meth:`call` posts ``(method, requests)`` to :attr:`requests` and blocks on
    :attr:`replies`, which the simulator fills from the community simulators' answers. The
    agents are built where the communities' data live (:class:`AgentTerms`); the specs given
    to :meth:`start` contribute only those public terms.
    """

    agents_single_threaded = False  # the simulators may share this process

    def __init__(self):
        self.requests: queue.Queue = queue.Queue()
        self.replies: queue.Queue = queue.Queue()
        self.terms: AgentTerms | None = None

    def start(self, specs: list[AgentSpec]) -> None:
        self.terms = AgentTerms.of(specs[0]) if specs else None

    def call(self, method: str, requests: dict[str, tuple]) -> dict[str, Any]:
        check_method(method)
        self.requests.put((method, requests))
        reply = self.replies.get()
        if isinstance(reply, BaseException):
            raise reply
        return reply
