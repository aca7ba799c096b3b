"""What a solve returns: :class:`SolveResult`, its status and its typed diagnostics.

A result holds the scalars (status, costs, certificate, times, model size), typed
diagnostics per method (:class:`SolverDiagnostics`, :class:`AdmmDiagnostics`, the comparison
with the exact method, the AC check) and the solution as **wide** frames, one per quantity,
indexed by period with one column per element (community, MV bus, unit): what a consumer
looks up. The long tables written to disk (one row per element and period,
:data:`~mosaik_bilevel.results.files.SOLVE_TABLES`) are views of them: ``result.exchanges``,
``result.dlmp``, ``result.mv_dispatch``, ``result.mv_voltage``.
:meth:`SolveResult.summary` is the JSON-ready set of scalars; :meth:`SolveResult.write`
writes ``summary.json`` and one CSV per table.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import pandas as pd

from ..model.linear import ModelSize
from .files import SOLVE_TABLES, SUMMARY_FILE, json_float
from .tables import MVDispatch, dlmp_long, exchanges_long


class ResultStatus(enum.StrEnum):
    """Outcome of a solve (a string: ``result.status == "optimal"`` holds)."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    TIME_LIMIT = "time_limit"
    ERROR = "error"
    #: LDD-ADMM stopped at its iteration cap; the best consistent iterate is reported
    NOT_CONVERGED = "not_converged"
    #: the dual big-Ms could not be verified within the allowed enlargements
    BIG_M_UNVERIFIED = "big_m_unverified"
    #: the single-level solution failed the bilevel certificate
    CERTIFICATE_FAILED = "certificate_failed"
    #: the follower cannot serve the exchanges (``standalone``)
    FOLLOWER_INFEASIBLE = "follower_infeasible"

    @property
    def has_dispatch(self) -> bool:
        """The result holds a dispatch that can be sent out (perhaps not proven optimal)."""
        return self in (ResultStatus.OPTIMAL, ResultStatus.NOT_CONVERGED,
                        ResultStatus.TIME_LIMIT, ResultStatus.BIG_M_UNVERIFIED)


def _plain(value) -> float | None:
    return json_float(float(value))


@dataclass(frozen=True)
class Certificate:
    """Outcome of the certificate of a single-level solution's follower side.

    It passes when the follower dispatch satisfies the follower's constraints
    (``primal_violation <= feasibility_tolerance``), its cost ``follower_cost`` equals the
    follower LP's optimum ``follower_cost_lp`` (``relative_error <= tolerance``) and, where
    the leader is settled at the follower's duals (``dlmp``), the prices are follower duals
    at that optimum (``price_distance <= price_tolerance``, per MWh; None in ``tariff``).
    ``price_at`` and ``price_range`` name the worst price and the range LP duality allows
    there when the price check fails.
    """

    passed: bool
    follower_cost: float
    follower_cost_lp: float
    relative_error: float
    tolerance: float
    message: str
    primal_violation: float = math.nan
    primal_violation_at: str | None = None
    feasibility_tolerance: float = math.nan
    price_range_ok: bool | None = None
    price_distance: float | None = None
    price_tolerance: float | None = None
    price_at: str | None = None
    price_range: tuple[float, float] | None = None

    @property
    def primal_feasible(self) -> bool:
        return bool(self.primal_violation <= self.feasibility_tolerance)

    def as_dict(self) -> dict:
        def opt(v):
            return None if v is None else _plain(v)

        return {
            "passed": bool(self.passed),
            "follower_cost": _plain(self.follower_cost),
            "follower_cost_lp": _plain(self.follower_cost_lp),
            "relative_error": _plain(self.relative_error),
            "tolerance": float(self.tolerance),
            "primal_feasible": self.primal_feasible,
            "primal_violation": _plain(self.primal_violation),
            "primal_violation_at": self.primal_violation_at,
            "feasibility_tolerance": _plain(self.feasibility_tolerance),
            "price_range_ok": self.price_range_ok,
            "price_distance": opt(self.price_distance),
            "price_tolerance": opt(self.price_tolerance),
            "price_at": self.price_at,
            "price_range": None if self.price_range is None else [
                _plain(v) for v in self.price_range],
            "message": self.message,
        }


class _Record:
    """A dataclass whose summary leaves out fields that do not apply (None)."""

    def as_dict(self) -> dict:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            out[f.name] = json_float(v) if isinstance(v, float) else v
        return out


@dataclass
class SolverDiagnostics(_Record):
    """How a single-level solve went (``exact`` and the reference points)."""

    solver_rounds: int = 0
    binaries_restored: int | None = None
    #: the follower LP alone at the solution's exchanges
    follower_cost_at_best_response: float | None = None
    follower_status_at_exchanges: str | None = None
    #: ``exact`` only: the dual bounds and the complementarity
    max_dual_to_big_m: float | None = None
    dual_big_m_min: float | None = None
    dual_big_m_max: float | None = None
    complementarity_pairs: int | None = None
    complementarity_rows_dropped: int | None = None
    #: rows tight at every feasible point: equalities, no binary and no dual big-M
    rows_always_tight: int | None = None


@dataclass
class AdmmDiagnostics(_Record):
    """How an LDD-ADMM run went."""

    iterations: int
    converged: bool
    backend: str
    workers: int
    coordinator_log: list[str] = field(default_factory=list)
    community_busy_s: dict[str, float] | None = None
    chosen_iteration: int | None = None
    leader_cost_by_period: list[float] | None = None


@dataclass
class DeviationSummary(_Record):
    """An LDD-ADMM result against the exact method's on the same horizon (definitions:
    docs/ldd_admm.md); the per-period table is ``SolveResult.deviation``."""

    exact_leader_cost: float
    exact_follower_cost: float
    deviation_leader_cost: float
    deviation_follower_cost: float
    average_relative_deviation_cost: float
    average_relative_deviation_exchange: float
    average_relative_deviation_cost_nearest: float | None = None
    average_relative_deviation_exchange_nearest: float | None = None


@dataclass
class ACSummary(_Record):
    """The AC check of a dispatch, summed up (per-step table: ``SolveResult.ac``)."""

    steps: int
    not_converged: int
    vm_min_pu: float | None = None
    vm_max_pu: float | None = None
    steps_with_vm_violation: int | None = None
    steps_with_loading_violation: int | None = None
    loading_max_percent: float | None = None
    loss_mwh: float | None = None
    ldf_error_mv_max_pu: float | None = None
    ldf_error_lv_max_pu: float | None = None
    power_flow_s: float | None = None
    p_sub_deviation_max_mw: float | None = None
    schedule_shortfall_max_mw: float | None = None
    #: the widest voltage band per level the check used, [low, high]
    mv_vm_band_pu: list[float] | None = None
    lv_vm_band_pu: list[float] | None = None


@dataclass
class ACCorrectionSummary(_Record):
    """An AC-corrected clearing (per-round table: ``SolveResult.ac_correction``).

    ``*_before`` are the costs of the first clearing (LinDistFlow alone), the result's of
    the kept round; ``price_of_feasibility`` is the system cost's increase (``system_cost −
    system_cost_before``)."""

    rounds: int
    max_rounds: int
    converged: bool
    vm_tolerance_pu: float
    loading_tolerance_percent: float
    leader_cost_before: float
    follower_cost_before: float
    system_cost_before: float
    price_of_feasibility: float
    time_s: float
    #: the round whose clearing is the result (the last one with a dispatch)
    kept_round: int = 0
    message: str = ""


@dataclass
class SolveResult:
    """Everything a solve returns. Costs are in the case's cost units over the horizon.

    Wide frames (index ``time``): ``exchange_p_mw``, ``exchange_q_mvar`` and
    ``price_per_mwh`` (one column per community), ``dlmp_per_mwh`` and ``dlmp_lp_per_mwh``
    (one column per MV bus: the settled price and the follower LP's own dual) and ``mv``
    (:class:`~mosaik_bilevel.results.tables.MVDispatch`).
    """

    case: str
    method: str
    pricing: str
    start: str
    periods: int
    step_h: float
    status: ResultStatus
    message: str
    leader_cost: float = math.nan
    follower_cost: float = math.nan
    own_cost: float = math.nan
    payments: float = math.nan
    system_cost: float = math.nan
    mip_gap: float = math.nan
    objective: float = math.nan
    certificate: Certificate | None = None
    times_s: dict = field(default_factory=dict)
    size: ModelSize | None = None
    big_m_log: list[str] = field(default_factory=list)
    solver: SolverDiagnostics | None = None
    admm: AdmmDiagnostics | None = None
    deviation_summary: DeviationSummary | None = None
    ac_summary: ACSummary | None = None
    ac_correction_summary: ACCorrectionSummary | None = None
    # -- the solution (wide) ----------------------------------------------------------------
    exchange_p_mw: pd.DataFrame | None = None
    exchange_q_mvar: pd.DataFrame | None = None
    price_per_mwh: pd.DataFrame | None = None
    community_bus: pd.Series | None = None
    dlmp_per_mwh: pd.DataFrame | None = None
    dlmp_lp_per_mwh: pd.DataFrame | None = None
    mv: MVDispatch | None = None
    # -- per-device and per-period tables ---------------------------------------------------
    batteries: pd.DataFrame | None = None
    rooftop_pv: pd.DataFrame | None = None
    shiftable: pd.DataFrame | None = None
    periods_table: pd.DataFrame | None = None
    residuals: pd.DataFrame | None = None
    deviation: pd.DataFrame | None = None
    ac: pd.DataFrame | None = None  # AC check per period (:mod:`..operation.ac_check`)
    #: per community and period: the transformer model, its tap (fixed: the data's;
    #: regulated: the one the dispatch implies) and whether it lies within range
    transformers: pd.DataFrame | None = None
    #: an AC-corrected clearing's rounds (violations, costs, time per round)
    ac_correction: pd.DataFrame | None = None

    def __post_init__(self):
        self.status = ResultStatus(self.status)

    @property
    def ok(self) -> bool:
        """True for an optimal solve (and, for ``exact``, a passed certificate)."""
        return self.status is ResultStatus.OPTIMAL and (
            self.certificate is None or self.certificate.passed)

    @property
    def solve_time_s(self) -> float:
        return float(self.times_s.get("solve", math.nan))

    # -- long views (the files' tables) ------------------------------------------------------
    @property
    def exchanges(self) -> pd.DataFrame | None:
        """``community, time, p_mw, q_mvar, mv_bus, price_per_mwh, payment``."""
        if self.exchange_p_mw is None:
            return None
        return exchanges_long(self.exchange_p_mw, self.exchange_q_mvar, self.price_per_mwh,
                              self.community_bus, self.step_h)

    @property
    def dlmp(self) -> pd.DataFrame | None:
        """``bus, time, dlmp_per_mwh, dlmp_lp_per_mwh, deviation_per_mwh``."""
        if self.dlmp_per_mwh is None:
            return None
        return dlmp_long(self.dlmp_per_mwh, self.dlmp_lp_per_mwh)

    @property
    def mv_dispatch(self) -> pd.DataFrame | None:
        """``unit, kind, bus, time, p_mw, q_mvar, cost_per_mwh[, available_mw]``."""
        return None if self.mv is None else self.mv.dispatch_long()

    @property
    def mv_voltage(self) -> pd.DataFrame | None:
        """``bus, time, vm_pu`` (LinDistFlow)."""
        return None if self.mv is None else self.mv.voltage_long()

    # -- output ------------------------------------------------------------------------------
    def summary(self) -> dict:
        """The result's scalars as plain JSON-ready values."""
        num = json_float
        out = {
            "case": self.case, "method": self.method, "pricing": self.pricing,
            "start": self.start, "periods": int(self.periods), "step_h": float(self.step_h),
            "status": self.status.value, "message": self.message,
            "leader_cost": num(self.leader_cost), "follower_cost": num(self.follower_cost),
            "communities_own_cost": num(self.own_cost), "payments": num(self.payments),
            "system_cost": num(self.system_cost), "mip_gap": num(self.mip_gap),
            "objective": num(self.objective),
            "certificate": self.certificate.as_dict() if self.certificate else None,
            "times_s": {k: num(v) for k, v in self.times_s.items()},
            "model_size": None if self.size is None else asdict(self.size),
            "big_m_log": list(self.big_m_log),
        }
        for record in (self.solver, self.admm, self.deviation_summary):
            if record is not None:
                out.update(record.as_dict())
        if self.ac_summary is not None:
            out["ac"] = self.ac_summary.as_dict()
        if self.transformers is not None and len(self.transformers):
            t = self.transformers
            out["transformers"] = {
                "models": {str(k): str(v) for k, v in
                           t.groupby("community", sort=False)["model"].first().items()},
                "taps_out_of_range": int((~t["tap_in_range"].astype(bool)).sum())}
        if self.ac_correction_summary is not None:
            out["ac_correction"] = self.ac_correction_summary.as_dict()
        return out

    def tables(self) -> dict[str, pd.DataFrame]:
        """The result's tables by file name (those that exist), long as on disk."""
        out = {name: getattr(self, name) for name in SOLVE_TABLES if name != "periods"}
        out["periods"] = self.periods_table
        return {k: out[k] for k in SOLVE_TABLES if out.get(k) is not None}

    def write(self, folder) -> Path:
        """Write ``summary.json`` and one CSV per table into ``folder``.

        A table of an earlier solve that this result does not have (say ``ac.csv`` of a run
        with the AC check, in a folder now written without it) is removed, so that the folder
        holds one result only.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tables = self.tables()
        for name in SOLVE_TABLES:
            if name not in tables:
                (folder / f"{name}.csv").unlink(missing_ok=True)
        for name, table in tables.items():
            table.to_csv(folder / f"{name}.csv", index=False)
        (folder / SUMMARY_FILE).write_text(json.dumps(self.summary(), indent=2,
                                                      allow_nan=False))
        return folder

    def __repr__(self) -> str:
        cert = ("-" if self.certificate is None else
                ("passed" if self.certificate.passed else "FAILED"))
        return (f"SolveResult({self.method}/{self.pricing} on {self.case} from {self.start}: "
                f"{self.status.value}, leader {self.leader_cost:.6g}, follower "
                f"{self.follower_cost:.6g}, system {self.system_cost:.6g}, gap "
                f"{self.mip_gap:.2g}, certificate {cert}, solve {self.solve_time_s:.3g} s)")

