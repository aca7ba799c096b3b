"""The ADMM penalty ρ/2 (x − c)² as a convex piecewise-linear epigraph (HiGHS has no MIQP).

Per coordinate, a variable θ ≥ 0 with cost ρ lies above tangents of (x − c)²/2 taken at
``c + d_j`` for fixed offsets ``d_j``: ``θ ≥ d_j (x − c) − d_j²/2``. Near convergence θ is
of the order of ε² (1e-10), below any solver's feasibility tolerance, so each cut is divided
by ``|d_j|`` (its violation is then measured in MW, like x) and θ is written as ``h θ̂``
with ``h`` the finest spacing (coefficients between h/span and 1)::

    (h / |d_j|) θ̂ − sign(d_j) x ≥ −sign(d_j) c − |d_j| / 2,        cost ρ h θ̂

Only the right-hand sides move with the centre ``c`` and only θ̂'s cost moves with ρ, so an
iteration updates numbers, never the model's structure.

Error bound. Between two tangents ``h`` apart, (x − c)²/2 exceeds the larger tangent by at
most h²/8, and never falls below it. So the approximate objective F̃ satisfies
F̃ ≤ F ≤ F̃ + δ(x), with δ(x) = Σ ρ h(x)²/8 over the coordinates and h(x) the spacing of the
tangents around each coordinate of x. For the step's solution x̃ and the exact step's optimum
x*: F(x̃) ≤ F̃(x̃) + δ(x̃) ≤ F̃(x*) + δ(x̃) ≤ F(x*) + δ(x̃). The solution is δ(x̃)-optimal for
the exact quadratic step: :meth:`QuadraticPenalty.bound` computes δ(x̃) after every step.
With offsets ``±h, ..., ±J h`` near the centre (then growing out to the range), δ is at most
``n ρ h²/8`` while the iterates stay within ``J h`` of their centres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .linear import Constraints, LinearModel, Variables


def tangent_offsets(step: float, dense: int, span: float, growth: float = 1.3) -> np.ndarray:
    """Offsets ±step·(1..dense), then growing by ``growth`` until ±span is covered."""
    pos = [step * k for k in range(1, dense + 1)]
    while pos[-1] < span:
        pos.append(pos[-1] * growth)
    pos = np.array(pos)
    return np.concatenate([-pos[::-1], pos])


def penalty_error(rho: float, step: float, coordinates: int) -> float:
    """Largest underestimate of Σ ρ/2 (x − c)² near the centre, summed over coordinates."""
    return coordinates * rho * step ** 2 / 8.0


@dataclass(frozen=True)
class QuadraticPenalty:
    """θ = h θ̂ ≥ (x − c)²/2 per coordinate, approximated by tangents; cost ρ h θ̂."""

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
        """δ(x): how far a step solved with this penalty can be from the exact step's optimum."""
        u = (np.asarray(x_values, dtype=float) - np.asarray(centre, dtype=float)).ravel()
        knots = np.concatenate([self.offsets[self.offsets < 0], [0.0],
                                self.offsets[self.offsets > 0]])
        k = np.clip(np.searchsorted(knots, u), 1, knots.size - 1)
        spacing = knots[k] - knots[k - 1]
        outside = (u < knots[0]) | (u > knots[-1])
        spacing = np.where(outside, np.inf, spacing)
        return float(rho * np.sum(spacing ** 2) / 8.0)


def add_quadratic_penalty(model: LinearModel, x: np.ndarray, *, name: str, step: float,
                          dense: int, span: float, growth: float = 1.3) -> QuadraticPenalty:
    """Add the epigraph for the columns ``x`` (any shape); centre 0 and ρ 0 until :meth:`set`.

    Parameters
    ----------
    step, dense, span
        Tangent spacing near the centre, how many tangents on each side at that spacing,
        and the distance the tangents must cover (the range of the variables).
    """
    x = np.asarray(x)
    offsets = tangent_offsets(step, dense, span, growth)
    coords = (pd.RangeIndex(x.size, name="coordinate"),)
    theta = model.add_variables(f"{name}.theta", coords, 0.0)
    cuts = model.add_constraints(
        f"{name}.tangent", (coords[0], pd.RangeIndex(offsets.size, name="tangent")), ">=",
        -np.abs(offsets)[None, :] / 2.0)
    model.add_terms(cuts.ids, theta.ids[:, None], step / np.abs(offsets)[None, :])
    model.add_terms(cuts.ids, x.reshape(-1, 1), -np.sign(offsets)[None, :])
    penalty = QuadraticPenalty(name=name, x=x, theta=theta, cuts=cuts, offsets=offsets,
                               step=step)
    model.set_objective_term(name, theta.ids, 0.0)
    return penalty
