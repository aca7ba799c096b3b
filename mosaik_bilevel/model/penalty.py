"""The ADMM penalty ρ/2 (x − c)² as a convex piecewise-linear function (HiGHS has no MIQP).

Per coordinate, the penalty is approximated by the upper envelope of tangents of u²/2
(u = x − c) taken at ``u = 0`` and at fixed offsets ``d_j`` (``±h, ..., ±J h``, then growing
out to the range). Two equivalent forms of the same envelope:

- **cuts** (:func:`add_quadratic_penalty`, ``form="cuts"``): a variable θ ≥ 0 with cost ρ
  above every tangent, ``θ ≥ d_j (x − c) − d_j²/2``. Near convergence θ is of the order of
  ε² (1e-10), below any solver's feasibility tolerance, so each cut is divided by ``|d_j|``
  (its violation is then measured in MW, like x) and θ is written as ``h θ̂``::

      (h / |d_j|) θ̂ − sign(d_j) x ≥ −sign(d_j) c − |d_j| / 2,        cost ρ h θ̂

  one row per tangent and coordinate.
- **segments** (``form="segments"``): the envelope in incremental form, one bounded variable
  per segment between the midpoints of successive tangent points (slope ``d_j`` after point
  ``d_j``)::

      x − Σ s⁺ + Σ s⁻ = c,        0 ≤ s_k ≤ width_k,        cost ρ Σ slope_k s_k

  convexity makes the LP fill the segments in order, so the cost is exactly the envelope;
  one row per coordinate, the tangents become bounded columns. On the paper case's
  coordinator (a MILP whose root LP HiGHS solves from scratch), 24 communities: 7.2–7.5 s
  per step with segments against 10.1 s with cuts (one run each, 4 iterations). The
  communities keep cuts: with segments their steps were not faster, and their times in that
  comparison moved with the changed iterate path rather than with the form.

Only the right-hand sides move with the centre ``c`` and only costs with ρ, so an iteration
updates numbers, never the model's structure.

Error bound. Between two tangent points ``h`` apart, u²/2 exceeds the envelope by at most
h²/8, and never falls below it. So the approximate objective F̃ satisfies
F̃ ≤ F ≤ F̃ + δ(x), with δ(x) = Σ ρ h(x)²/8 over the coordinates and h(x) the spacing of the
tangent points around each coordinate of x. For the step's solution x̃ and the exact step's
optimum x*: F(x̃) ≤ F̃(x̃) + δ(x̃) ≤ F̃(x*) + δ(x̃) ≤ F(x*) + δ(x̃). The solution is
δ(x̃)-optimal for the exact quadratic step: ``bound`` computes δ(x̃) after every step.
With offsets ``±h, ..., ±J h`` near the centre, δ is at most ``n ρ h²/8`` while the
iterates stay within ``J h`` of their centres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .linear import Constraints, LinearModel, Variables

FORMS = ("cuts", "segments")


def tangent_offsets(step: float, dense: int, span: float, growth: float = 1.3) -> np.ndarray:
    """Offsets ±step·(1..dense), then growing by ``growth`` until ±span is covered."""
    pos = [step * k for k in range(1, dense + 1)]
    while pos[-1] < span:
        pos.append(pos[-1] * growth)
    pos = np.array(pos)
    return np.concatenate([-pos[::-1], pos])


def envelope_segments(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Widths and slopes of one side's segments of the tangent envelope of u²/2.

    Tangent points ``0, d_1, ..., d_J`` (the positive offsets); the envelope follows the
    tangent at ``d_j`` between the midpoints ``(d_{j-1} + d_j)/2`` and ``(d_j + d_{j+1})/2``,
    the last one to infinity.
    """
    points = np.concatenate([[0.0], np.sort(offsets[offsets > 0])])
    mid = (points[:-1] + points[1:]) / 2.0
    edges = np.concatenate([[0.0], mid, [np.inf]])
    return np.diff(edges), points


def penalty_error(rho: float, step: float, coordinates: int) -> float:
    """Largest underestimate of Σ ρ/2 (x − c)² near the centre, summed over coordinates."""
    return coordinates * rho * step ** 2 / 8.0


def envelope_bound(offsets: np.ndarray, x_values, centre, rho: float) -> float:
    """δ(x): how far a step solved with the envelope can be from the exact step's optimum."""
    u = (np.asarray(x_values, dtype=float) - np.asarray(centre, dtype=float)).ravel()
    knots = np.concatenate([offsets[offsets < 0], [0.0], offsets[offsets > 0]])
    k = np.clip(np.searchsorted(knots, u), 1, knots.size - 1)
    spacing = knots[k] - knots[k - 1]
    outside = (u < knots[0]) | (u > knots[-1])
    spacing = np.where(outside, np.inf, spacing)
    return float(rho * np.sum(spacing ** 2) / 8.0)


@dataclass(frozen=True)
class QuadraticPenalty:
    """θ = h θ̂ ≥ (x − c)²/2 per coordinate, one cut per tangent; cost ρ h θ̂."""

    name: str
    x: np.ndarray
    theta: Variables
    cuts: Constraints
    offsets: np.ndarray
    step: float

    def set(self, model: LinearModel, centre: np.ndarray, rho: float) -> None:
        """Move the centre and change ρ."""
        c = np.asarray(centre, dtype=float).reshape(self.x.shape)
        d = self.offsets
        rhs = -np.sign(d)[None, :] * c.reshape(-1, 1) - np.abs(d)[None, :] / 2.0
        model.set_rhs(self.cuts, rhs.reshape(self.cuts.shape))
        model.set_objective_term(self.name, self.theta.ids, float(rho) * self.step)

    def bound(self, x_values: np.ndarray, centre: np.ndarray, rho: float) -> float:
        """δ(x) (see the module docstring)."""
        return envelope_bound(self.offsets, x_values, centre, rho)


@dataclass(frozen=True)
class SegmentPenalty:
    """The same envelope in incremental form: one bounded column per segment."""

    name: str
    x: np.ndarray
    up: Variables
    down: Variables
    link: Constraints
    offsets: np.ndarray
    slopes: np.ndarray
    step: float

    def set(self, model: LinearModel, centre: np.ndarray, rho: float) -> None:
        """Move the centre and change ρ."""
        model.set_rhs(self.link, np.asarray(centre, dtype=float).reshape(self.link.shape))
        cost = np.broadcast_to(float(rho) * self.slopes[None, :], self.up.shape)
        model.set_objective_term(self.name, np.concatenate([self.up.ids, self.down.ids]),
                                 np.concatenate([cost, cost]))

    def bound(self, x_values: np.ndarray, centre: np.ndarray, rho: float) -> float:
        """δ(x) (see the module docstring)."""
        return envelope_bound(self.offsets, x_values, centre, rho)


def add_quadratic_penalty(model: LinearModel, x: np.ndarray, *, name: str, step: float,
                          dense: int, span: float, growth: float = 1.3,
                          form: str = "cuts") -> QuadraticPenalty | SegmentPenalty:
    """Add the penalty for the columns ``x`` (any shape); centre 0 and ρ 0 until ``set``.

    Parameters
    ----------
    step, dense, span
        Tangent spacing near the centre, how many tangents on each side at that spacing,
        and the distance the tangents must cover (the range of the variables).
    form
        ``cuts`` or ``segments`` (see the module docstring).
    """
    x = np.asarray(x)
    offsets = tangent_offsets(step, dense, span, growth)
    coordinate = pd.RangeIndex(x.size, name="coordinate")
    if form == "segments":
        widths, slopes = envelope_segments(offsets)
        segment = pd.RangeIndex(widths.size, name="segment")
        up = model.add_variables(f"{name}.up", (coordinate, segment), 0.0, widths[None, :])
        down = model.add_variables(f"{name}.down", (coordinate, segment), 0.0,
                                   widths[None, :])
        link = model.add_constraints(f"{name}.link", (coordinate,), "==", 0.0)
        model.add_terms(link.ids, x.ravel(), 1.0)
        model.add_terms(link.ids[:, None], up.ids, -1.0)
        model.add_terms(link.ids[:, None], down.ids, 1.0)
        penalty = SegmentPenalty(name=name, x=x, up=up, down=down, link=link,
                                 offsets=offsets, slopes=slopes, step=step)
        penalty.set(model, np.zeros(x.size), 0.0)
        return penalty
    if form != "cuts":
        raise ValueError(f"unknown penalty form {form!r}; choose one of {FORMS}")
    theta = model.add_variables(f"{name}.theta", (coordinate,), 0.0)
    cuts = model.add_constraints(
        f"{name}.tangent", (coordinate, pd.RangeIndex(offsets.size, name="tangent")), ">=",
        -np.abs(offsets)[None, :] / 2.0)
    model.add_terms(cuts.ids, theta.ids[:, None], step / np.abs(offsets)[None, :])
    model.add_terms(cuts.ids, x.reshape(-1, 1), -np.sign(offsets)[None, :])
    penalty = QuadraticPenalty(name=name, x=x, theta=theta, cuts=cuts, offsets=offsets,
                               step=step)
    model.set_objective_term(name, theta.ids, 0.0)
    return penalty
