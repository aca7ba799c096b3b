"""A community's private side of LDD-ADMM: its data, its model, its solver (model.md §6).

A :class:`CommunityAgent` is built from one community's data and the case's public settings,
inside whatever process the backend puts it in; nothing else ever holds its data. Its
methods take and return plain Python values only (lists of floats, strings, dicts), which
is all that crosses a process or machine boundary:

- :meth:`open` builds the community's model for one horizon (once) and discloses the
  reactive exchange profile and the transformer rating (and, behind a ``fixed``-model
  transformer, that its LV voltage follows its MV bus);
- :meth:`propose` solves ``min L_c(x) + ν'x + ρ/2 ‖x − z‖²`` and returns the coupling
  vector ``x`` only (with the step's solver status and error bound): the exchange profile
  and, for a ``fixed``-model transformer, the MV-voltage profile the community assumed
  (scaled, :mod:`~mosaik_bilevel.methods.ldd_admm.coupling`) with the range of MV voltages
  its schedule tolerates;
- :meth:`report`, once after the iterations, returns the community's own cost per period of
  every step: the community's share of the leader's objective, and nothing else. Its
  schedules (batteries, shiftable loads) never leave it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ...data.case import Community, CommunitySettings
from ...model.linear import LinearModel
from ...model.lv_community import add_community
from ...model.tariff import add_tariff
from ...solvers.highs import SolverOptions
from ...solvers.lazy import LazyBinaries
from .coupling import VoltageCoupling
from .step import PenalizedStep, PenaltySpec


class CommunityAgent:
    """One community in LDD-ADMM (see the module docstring).

    Parameters
    ----------
    community
        The community's own data.
    settings
        The case's public settings (step, horizon, cost coefficients, polygon sides).
    pricing
        ``"dlmp"`` (payments belong to the coordinator) or ``"tariff"`` (paid here).
    tariff
        Import and export tariff per period of the case (``tariff_buy_per_mwh``,
        ``tariff_sell_per_mwh``), public; needed in ``tariff`` pricing.
    coupling
        How the MV voltage enters consensus (public: its scale, reference and window;
        default :class:`VoltageCoupling`'s defaults); used when the community's transformer
        model is ``fixed``.
    """

    def __init__(self, community: Community, settings: CommunitySettings, *, pricing: str,
                 tariff: pd.DataFrame | None = None, options: SolverOptions | None = None,
                 penalty: PenaltySpec | None = None, coupling: VoltageCoupling | None = None):
        self._community = community
        self._coupling = coupling or VoltageCoupling()
        self._settings = settings
        self._pricing = pricing
        self._tariff = tariff
        self._options = options or SolverOptions()
        self._penalty_spec = penalty or PenaltySpec()
        self._step: PenalizedStep | None = None

    @property
    def name(self) -> str:
        return self._community.name

    # -- the protocol (plain values in and out) -----------------------------------------------
    def open(self, start: str, n_periods: int, initial_energy_mwh: dict | None = None,
             shiftable_done: dict | None = None) -> dict:
        """Build the model of the horizon starting at ``start``; disclose what the grid needs.

        ``initial_energy_mwh`` and ``shiftable_done``: the community's measured state.

        Returns ``{"q_mvar": [...], "s_max_mva": float}``, and ``"transformer_model":
        "fixed"`` with the (public) ``"voltage_coupling"`` terms it uses when the
        community's LV voltage follows its MV bus (its coupling vector then holds the
        assumed MV-voltage profile after the exchanges).
        """
        c = self._community
        timeline = c.member_p_mw.index
        first = timeline.get_indexer([pd.Timestamp(start)])[0]
        periods = timeline[first:first + int(n_periods)]
        model = LinearModel(f"community {c.name}")
        initial = None if initial_energy_mwh is None else pd.Series(initial_energy_mwh)
        blocks = add_community(model, self._settings, c, periods, name=f"c[{c.name}]",
                               initial_energy_mwh=initial, shiftable_done=shiftable_done)
        self._tariff_block = None
        if self._pricing == "tariff":
            self._tariff_block = add_tariff(model, self._settings.step_h, self._tariff,
                                            [blocks], periods)
        self._model, self._blocks, self._periods = model, blocks, periods
        self._cols, span = blocks.p_ex.ids, 2.0 * c.s_max_mva
        self._voltage = None
        if blocks.w_mv is not None:
            self._voltage = self._add_voltage_coordinate(model, blocks, periods)
            self._cols = np.concatenate([blocks.p_ex.ids, self._voltage.ids])
            span = max(span, self._coupling.span)
        model.set_objective_term("multiplier", self._cols, 0.0)
        self._step = PenalizedStep(model, self._cols, self._penalty_spec, self._options,
                                   LazyBinaries.of([blocks], None), span_mw=span)
        self._own_costs: list[list[float]] = []
        disclosed = {"q_mvar": c.q_exchange_mvar.loc[periods].astype(float).tolist(),
                     "s_max_mva": float(c.s_max_mva)}
        if self._voltage is not None:  # public terms, so the coordinator can check them
            disclosed["transformer_model"] = "fixed"
            disclosed["voltage_coupling"] = dataclasses.asdict(self._coupling)
        return disclosed

    def propose(self, multiplier: list[float], target: list[float] | None,
                rho: float, abs_gap: float | None = None) -> dict:
        """Solve the community step; returns ``{"x": [...], "bound": δ, "status": ...}``.

        ``multiplier`` and ``target`` are coupling vectors: the exchange profile (MW) and,
        for a fixed-model transformer, the scaled MV-voltage profile after it. ``abs_gap``:
        how far from its optimum the step may stop (default: the options'). ``bound`` is how
        far the answer can be from the exact quadratic step's optimum. A fixed-model
        community adds ``"w_range_pu2": [[low, ...], [high, ...]]``: per period the MV
        squared voltages its schedule tolerates (:meth:`VoltageCoupling.tolerated`).
        """
        n = self._cols.size
        target = np.zeros(n) if target is None else np.asarray(target, float)
        self._model.set_objective_term("multiplier", self._cols,
                                       np.asarray(multiplier, dtype=float))
        step = self._step.solve(target, rho, abs_gap)
        if step.x is None:
            return {"x": None, "status": step.status}
        self._own_costs.append(self._own_cost(step.x).tolist())  # private until report()
        reply = {"x": step.x[self._cols].tolist(), "bound": step.bound, "status": step.status}
        if self._voltage is not None:
            reply["w_range_pu2"] = list(self._tolerated(step.x))
        return reply

    def report(self) -> dict:
        """The community's own cost per period for every step since :meth:`open`.

        ``{"own_cost": [[...], ...]}``: the part of the leader's cost that is the community's
        (battery wear, curtailment and, in ``tariff`` pricing, the tariff); requested once,
        after the iterations, to state the leader's cost of the chosen iterate.
        """
        return {"own_cost": [list(c) for c in self._own_costs]}

    # -- internals ------------------------------------------------------------------------------
    def _add_voltage_coordinate(self, model: LinearModel, blocks, periods):
        """The consensus coordinate ``u = σ (w_mv − w_ref)`` as a column of its own."""
        coupling = self._coupling
        a = model.arrays  # the coordinate is bounded as w_mv is
        u = model.add_variables(f"c[{self.name}].w_mv_coordinate", (periods,),
                                coupling.coordinate(a.col_lower[blocks.w_mv.ids]),
                                coupling.coordinate(a.col_upper[blocks.w_mv.ids]))
        row = model.add_constraints(f"c[{self.name}].w_mv_coordinate_def", (periods,), "==",
                                    -coupling.scale * coupling.reference_pu2)
        model.add_terms(row.ids, u.ids, 1.0)
        model.add_terms(row.ids, blocks.w_mv.ids, -coupling.scale)
        return u

    def _tolerated(self, x: np.ndarray) -> tuple[list[float], list[float]]:
        """Per period, the MV squared voltages the step's schedule tolerates.

        A change δ of ``w_mv`` moves the LV root and every LV bus by δ/n² (the transformer
        row and LinDistFlow's voltage drops) and touches nothing else, so ``w_mv`` may fall
        by n² times the smallest margin to a lower voltage bound (and rise likewise), and
        stay within its own range.
        """
        a = self._model.arrays
        lv = self._blocks.lv
        cols = np.vstack([lv.w_root_var.ids[None, :], lv.w.ids])  # LV buses × periods
        value = x[cols]
        low = (value - a.col_lower[cols]).min(axis=0)
        high = (a.col_upper[cols] - value).min(axis=0)
        n2 = self._community.transformer_link.ratio() ** 2
        w_ids = self._blocks.w_mv.ids
        w = x[w_ids]
        low = np.minimum(n2 * low, w - a.col_lower[w_ids])
        high = np.minimum(n2 * high, a.col_upper[w_ids] - w)
        return self._coupling.tolerated(w, low, high)

    def _own_cost(self, x: np.ndarray) -> np.ndarray:
        """Own cost per period: battery wear, curtailment and, in tariff pricing, the tariff."""
        cost = self._blocks.own_cost_by_period(x)
        if self._tariff_block is not None:
            cost += self._tariff_block.payment_by_period(x)
        return cost
