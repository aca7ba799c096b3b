"""The single model each method solves, for one horizon: model.md §4, §5 and §7.

- ``exact``: the leader (every community) plus the follower's KKT system (§5); in ``dlmp``
  pricing the payment ``λ'E p`` enters through strong duality as ``c'y - λ'd + μ'h``.
- ``hpr``: the leader plus the follower's constraints, not its optimality; tariff payments.
- ``integrated``: the leader plus the follower's constraints; the objective is the system's
  cost (communities' own costs plus the follower's); payments cancel.
- ``standalone``: the communities against the tariff alone; the follower is solved after.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from ..data.case import Case
from .big_m import SAFETY, follower_dual_big_m
from .correction import MV, ACBounds
from .follower import Follower, build_follower
from .kkt import Embedding, KKTSystem, add_kkt, embed
from .linear import LinearModel, Variables
from .lv_community import CommunityBlocks, add_community
from .tariff import Tariff, add_tariff

Method = Literal["exact", "hpr", "integrated", "standalone"]
Pricing = Literal["dlmp", "tariff"]
METHODS: tuple[str, ...] = ("exact", "hpr", "integrated", "standalone")
PRICINGS: tuple[str, ...] = ("dlmp", "tariff")


@dataclass
class Formulation:
    """A method's model for one horizon and the blocks results are read from."""

    method: str
    pricing: str
    case: Case
    periods: pd.DatetimeIndex
    model: LinearModel
    communities: list[CommunityBlocks]
    follower: Follower
    kkt: KKTSystem | None = None
    primal: Embedding | None = None
    tariff: Tariff | None = None
    state: dict = field(default_factory=dict)  # the measured state the horizon starts from

    @property
    def exchange_ids(self) -> np.ndarray:
        """Column ids of the exchanges, community × period."""
        return np.vstack([c.p_ex.ids for c in self.communities]).reshape(
            len(self.communities), len(self.periods))

    def exchanges(self, x: np.ndarray) -> np.ndarray:
        return x[self.exchange_ids]

    def own_cost(self, x: np.ndarray) -> float:
        """The communities' own costs (battery wear, curtailment)."""
        return float(sum(c.own_cost(x) for c in self.communities))

    def follower_ids(self, block: Variables) -> np.ndarray | None:
        """Host ids of a follower block, when the follower is part of this model."""
        embedding = self.kkt.primal if self.kkt is not None else self.primal
        return None if embedding is None else embedding.ids(block)


def build_formulation(
    case: Case,
    periods: pd.DatetimeIndex,
    method: str = "exact",
    pricing: str = "dlmp",
    *,
    dual_big_m_safety: float = SAFETY,
    tighten: bool = True,
    initial_energy_mwh: dict[str, pd.Series] | None = None,
    shiftable_done: dict[str, pd.Series] | None = None,
    p_init_mw: pd.Series | None = None,
    ac_bounds: ACBounds | None = None,
) -> Formulation:
    """Build ``method``'s model of ``case`` over ``periods`` (see the module docstring).

    Parameters
    ----------
    dual_big_m_safety
        Safety factor γ of the dual big-Ms (``exact`` only).
    tighten
        Drop complementarity rows that can never bind (``exact`` only).
    initial_energy_mwh
        Measured battery states per community at the horizon start.
    shiftable_done
        Measured shiftable-load progress per community in the cycle the horizon starts in.
    p_init_mw
        Units' output before the horizon (first ramp).
    ac_bounds
        Voltage bounds and transformer ratings tightened by an AC correction
        (:mod:`mosaik_bilevel.model.correction`).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if pricing not in PRICINGS:
        raise ValueError(f"unknown pricing {pricing!r}; choose one of {PRICINGS}")
    model = LinearModel(f"{method}-{pricing}")
    initial = initial_energy_mwh or {}
    done = shiftable_done or {}
    bounds = ac_bounds or ACBounds()
    blocks = [
        add_community(model, case, c, periods, name=f"c[{c.name}]",
                      initial_energy_mwh=initial.get(c.name), shiftable_done=done.get(c.name),
                      vm_min_pu=bounds.vm_min(c.name, c.lv_network.buses, periods,
                                              c.lv_network.voltage_band()[0]),
                      s_max_factor=bounds.rating_factor(c.name, periods))
        for c in case.communities
    ]
    mv = case.mv_network
    follower = build_follower(case, periods, p_init_mw=p_init_mw, vm_min_pu=bounds.vm_min(
        MV, mv.buses, periods, mv.voltage_band()[0]))
    exchanges = {follower.p_ex.name: np.vstack([b.p_ex.ids for b in blocks])}
    form = Formulation(method=method, pricing=pricing, case=case, periods=periods,
                       model=model, communities=blocks, follower=follower,
                       state={"initial_energy_mwh": initial_energy_mwh,
                              "shiftable_done": shiftable_done, "p_init_mw": p_init_mw,
                              "ac_bounds": ac_bounds})
    if method == "exact":
        form.kkt = add_kkt(
            model, follower.model, exchanges,
            lambda f: follower_dual_big_m(follower, f, dual_big_m_safety),
            prefix="follower", tighten=tighten)
        if pricing == "dlmp":
            model.add_objective(*form.kkt.payment_terms())
        else:
            form.tariff = add_tariff(model, case.step_h, case.prices, blocks, periods)
    elif method in ("hpr", "integrated"):
        form.primal = embed(model, follower.model, exchanges, prefix="follower")
        if method == "hpr":
            form.pricing = "tariff"
            form.tariff = add_tariff(model, case.step_h, case.prices, blocks, periods)
        else:
            a = follower.model.arrays
            y = np.flatnonzero(~a.parameter)
            model.add_objective(form.primal.col_map[y], a.cost[y])
            model.objective_offset += a.offset
    else:  # standalone
        form.tariff = add_tariff(model, case.step_h, case.prices, blocks, periods)
    tie_transformers(form)
    return form


def tie_transformers(form: Formulation) -> None:
    """Each fixed-tap transformer's MV voltage ``w_mv`` is the follower's voltage at its bus
    (an upper-level constraint on follower variables, see docs/transformer.md); in
    ``standalone``, which knows nothing of the MV side, it sits at the substation's
    set-point."""
    mv = form.follower.mv
    w_ids = form.follower_ids(mv.w)
    model = form.model
    for block in form.communities:
        if block.w_mv is None:
            continue
        bus = int(block.community.mv_bus)
        pos = mv.network.position.at[bus]
        if w_ids is None or pos == 0:
            w_fix = form.case.substation.vm_set_pu ** 2 if w_ids is None else mv.w_root
            model.set_bounds(block.w_mv, w_fix, w_fix)
            continue
        row = model.add_constraints(f"c[{block.community.name}].w_mv_tie",
                                    (form.periods,), "==", 0.0)
        model.add_terms(row.ids, block.w_mv.ids, 1.0)
        model.add_terms(row.ids, w_ids[pos - 1], -1.0)
