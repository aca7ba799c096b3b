"""Lazy binaries: solve with some binaries relaxed, restore only those a solution needs.

Three groups of binaries only *enforce* a logic that an optimal solution often satisfies on
its own:

- a battery's mode ``z`` forbids charging and discharging in the same period;
- a shiftable load's status ``on`` must be whole;
- a complementarity binary ``β`` forbids a positive dual on a row with positive slack.

The model is solved with them continuous in [0, 1]: a relaxation. If its solution satisfies
every relaxed logic, it is feasible for the full model and therefore optimal for it (the bound
of the relaxation bounds the full model too, so the MIP gap carries over). Otherwise the
binaries at fault become integer again and the model is re-solved: finitely many rounds, each
a relaxation of the full model, the last one exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .formulation import Formulation

#: A value above this counts as positive (MW, MWh, cost units per unit).
TOL = 1e-7


@dataclass
class LazyBinaries:
    """The relaxed binaries of a formulation and the checks that restore them."""

    z: np.ndarray  # (n, 3): z, p_ch, p_dis column ids
    on: np.ndarray
    beta: np.ndarray  # β column ids (aligned with the KKT's kept rows)

    @classmethod
    def of(cls, form: Formulation) -> LazyBinaries:
        z = [np.column_stack([c.z.ids.ravel(), c.p_ch.ids.ravel(), c.p_dis.ids.ravel()])
             for c in form.communities if c.z is not None]
        on = [c.on.ids.ravel() for c in form.communities if c.on is not None]
        return cls(
            z=np.vstack(z) if z else np.zeros((0, 3), dtype=np.int64),
            on=np.concatenate(on) if on else np.zeros(0, dtype=np.int64),
            beta=(form.kkt.beta.ids.ravel() if form.kkt is not None
                  else np.zeros(0, dtype=np.int64)),
        )

    @property
    def columns(self) -> np.ndarray:
        return np.concatenate([self.z[:, 0], self.on, self.beta])

    def violations(self, form: Formulation, x: np.ndarray, relaxed: np.ndarray) -> np.ndarray:
        """Relaxed columns whose logic the solution ``x`` breaks."""
        bad = []
        if self.z.size:
            both = (x[self.z[:, 1]] > TOL) & (x[self.z[:, 2]] > TOL)
            bad.append(self.z[both, 0])
        if self.on.size:
            bad.append(self.on[np.abs(x[self.on] - np.round(x[self.on])) > 1e-6])
        if self.beta.size:
            kkt = form.kkt
            g = kkt.form.G[kkt.kept]
            slack = kkt.form.h[kkt.kept] - g @ x[kkt.y]
            mu = x[kkt.mu.ids]
            bad.append(self.beta[(mu > TOL) & (slack > TOL)])
        cols = np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)
        return cols[relaxed[cols]]

    def complete(self, x: np.ndarray) -> np.ndarray:
        """Whole values for the relaxed modes of a solution that passed the checks."""
        x = x.copy()
        if self.z.size:
            x[self.z[:, 0]] = (x[self.z[:, 1]] > TOL).astype(float)
        if self.on.size:
            x[self.on] = np.round(x[self.on])
        return x
