"""What a community and the coordinator agree on in LDD-ADMM, and in which units.

A community whose MV/LV transformer is ``regulated`` couples to the MV side only through its
exchange profile ``p_ex`` (MW). A ``fixed``-model community's LV root follows the squared
voltage ``w_mv`` of its MV bus (:mod:`mosaik_bilevel.data.transformer`), so its coupling
variables are ``(p_ex, w_mv)``: it assumes an MV-voltage profile, and the follower's
dispatch must deliver it. Consensus works on one vector per community,

    x_c = (p_ex,t (MW) for t in T,  σ (w_mv,t − w_ref) for t in T)

with ``w_ref`` = 1 pu² (the nominal voltage) and ``σ`` the **voltage scale**, by default
1 MW per pu² (``ADMMOptions.voltage_scale``). One ρ and one set of Boyd tolerances then serve
both parts: the absolute tolerance of 1e-5 (MW) is 1e-5 pu² on ``w`` (5e-6 pu of voltage,
far below what LinDistFlow resolves), and ``|w − w_ref|`` (up to ~0.2 pu² in a 0.9–1.1 pu
band) is of the order of the communities' exchanges (0.01–1 MW), so neither part dominates
the relative tolerance; the shift by ``w_ref`` keeps the constant nominal voltage out of it.
The alternative of weighting a voltage mismatch like the exchange that would cause it,
``σ = 1/(2 R)`` with ``R`` the MV path resistance of the bus (3–12 MW per pu² on the random
cases), converged worse on 19 random cases with fixed transformers (dlmp pricing): 100
iterations without convergence on one, an iterate 6.5e-3 above the exact leader cost on
another, 37 iterations on average, against every case converged within 2e-8 of the exact
leader cost at σ = 1 (5e-6 on one) in 17 iterations on average (docs/ldd_admm.md). A large
σ makes the voltage coordinate stiff: the coordinator's voltage at a bus is a function of the
exchanges there, so a heavily weighted voltage mismatch locks the exchanges in place.

Besides its coupling vector, a fixed-model community reports with each step the range of
MV squared voltages its step's schedule tolerates (:meth:`VoltageCoupling.tolerated`): its
LV voltages are affine in ``w_mv`` with slope ``1/n²`` and nothing else in its model depends
on ``w_mv``, so every ``w_mv`` in that range keeps every LV bus in its band. The range is
clipped to ``window_pu2`` around the assumed value, so a margin wider than the window is
not revealed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Default voltage scale σ (MW per pu²), see the module docstring.
VOLTAGE_SCALE = 1.0
#: Reference w_ref of the voltage coordinate (pu²): the nominal voltage.
REFERENCE_PU2 = 1.0
#: Half-width (pu²) of the range of MV voltages a community reports at most by default.
WINDOW_PU2 = 0.01
#: Squared voltages the penalty's tangents must cover (pu²): w in about [0.8, 1.25].
W_SPAN_PU2 = (0.8, 1.25)


@dataclass(frozen=True)
class VoltageCoupling:
    """How a fixed-model community's MV-voltage profile enters consensus (module docstring).

    Attributes
    ----------
    scale
        σ, MW per pu².
    reference_pu2
        w_ref, pu².
    window_pu2
        Half-width of the tolerated range a community reports at most (pu²).
    """

    scale: float = VOLTAGE_SCALE
    reference_pu2: float = REFERENCE_PU2
    window_pu2: float = WINDOW_PU2

    def coordinate(self, w_pu2):
        """The consensus coordinate ``σ (w − w_ref)`` of squared voltages ``w``."""
        return self.scale * (np.asarray(w_pu2, dtype=float) - self.reference_pu2)

    def voltage(self, coordinate):
        """The squared voltage (pu²) of consensus coordinates."""
        return self.reference_pu2 + np.asarray(coordinate, dtype=float) / self.scale

    @property
    def span(self) -> float:
        """How far (in the coordinate's units) the penalty's tangents must reach."""
        lo, hi = W_SPAN_PU2
        return self.scale * (hi - lo)

    def tolerated(self, w_mv: np.ndarray, margin_low: np.ndarray, margin_high: np.ndarray
                  ) -> tuple[list[float], list[float]]:
        """The MV squared voltages a schedule tolerates, per period, within the window.

        Parameters
        ----------
        w_mv
            The assumed MV squared voltage per period.
        margin_low, margin_high
            Per period, how far (pu², in ``w_mv``'s terms: LV margins times ``n²``) ``w_mv``
            may fall or rise before a voltage bound of the community's model is reached.
        """
        w_mv = np.asarray(w_mv, dtype=float)
        down = np.clip(margin_low, 0.0, self.window_pu2)
        up = np.clip(margin_high, 0.0, self.window_pu2)
        return (w_mv - down).tolist(), (w_mv + up).tolist()
