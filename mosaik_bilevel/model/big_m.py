"""Dual big-Ms of the follower's complementarity, from a stated shadow-price argument.

No generic value is safe: a dual big-M that is too small silently cuts off the bilevel
optimum (Pineda & Morales 2019), and checking one is as hard as the bilevel problem itself
(Kleinert et al. 2020). We therefore (1) derive each bound from what the dual *means*, and
(2) verify after every solve (in :mod:`mosaik_bilevel.methods.exact`) that no dual sits at its bound
and that the leader's price is the best one the follower's dual-optimal face allows at the
found exchanges; if either check fails the bounds are enlarged and the problem re-solved.

The argument. A dual μ_i of a follower row is the marginal cost of tightening that row: the
cost of the cheapest redispatch that restores feasibility. Redispatch replaces some MW of one
source by another, which costs at most the price spread

    Π = (max_j c_j) - min(0, min_j c_j)       (cost per MW and period, c_j = Δt · price)

per MW moved. Tightening row i by one of its units forces at most σ_i MW to move, with

- σ = 1 for rows in MW or MVAr (unit, PV, substation bounds; thermal polygons, whose
  normals are unit vectors), times ``max(1, X/R)`` of the network for rows that involve
  reactive power (reactive prices arise only through voltages, at the X/R ratio);
- σ = H (the number of periods) for ramp rows, whose tightening can cascade through the
  horizon;
- σ_j = 1 / (2 S_j) for the voltage bounds at bus j (units pu²), where S_j (pu² per MW) is the
  largest sensitivity of w_j to an injection the follower controls (a unit or PV plant):
  the common-path resistance (or reactance) of j and that injection's bus.

and M_i = γ · Π · σ_i with a safety factor γ (default 10). The argument fails where a
constraint binds that no follower resource can relieve (a voltage bound at a bus whose
voltage only the leader's exchanges move): there the follower's dual-optimal face is
unbounded and the optimistic leader may pick an arbitrary price; the after-solve checks
report it as such.
"""

from __future__ import annotations

import numpy as np

from .follower import Follower
from .kkt import MatrixForm

#: Default safety factor γ.
SAFETY = 10.0


def price_spread(form: MatrixForm) -> float:
    """Π: largest cost difference per MW and period between two of the follower's sources."""
    c = form.c[form.c != 0]
    if not c.size:
        return 1.0
    return float(max(c.max(), 0.0) - min(c.min(), 0.0)) or 1.0


def follower_dual_big_m(follower: Follower, form: MatrixForm, safety: float = SAFETY
                        ) -> np.ndarray:
    """One dual big-M per row of ``G`` of the follower's matrix form (see module docstring)."""
    spread = price_spread(form)
    net = follower.mv.network
    r = net.branches["r_pu"].to_numpy()
    x = net.branches["x_pu"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        xr = np.nanmax(np.where(r > 0, x / r, np.nan)) if r.size else 1.0
    reactive_factor = max(1.0, float(xr) if np.isfinite(xr) else 1.0)

    sigma = np.ones(form.G.shape[0])
    blocks = form.g_block.astype(str)
    reactive = np.char.find(blocks, "q_") >= 0
    reactive |= np.char.find(blocks, "polygon") >= 0
    sigma[reactive] = reactive_factor
    sigma[np.char.find(blocks, "ramp") >= 0] = len(follower.periods)

    # voltage bounds: sensitivity of w_j to the follower's own injections
    voltage = np.flatnonzero(np.char.startswith(blocks, "mv.w_pu2."))
    if voltage.size:
        rc, xc = net.common_path_impedance
        flex_pos = net.position.loc[list(follower.flexible_buses)].to_numpy()
        sens = np.maximum(rc, xc)
        if flex_pos.size:
            best = sens[:, flex_pos].max(axis=1)
        else:
            best = np.zeros(net.n_buses)
        # fall back to the bus's own path when nothing the follower controls reaches it
        own = np.diag(sens)
        best = np.where(best > 0, best, own)
        w = follower.mv.w
        col_to_bus = np.full(follower.model.n_cols, -1)
        col_to_bus[w.ids] = np.arange(1, net.n_buses)[:, None]
        bus_pos = col_to_bus[form.g_source[voltage]]
        with np.errstate(divide="ignore"):
            sigma[voltage] = 1.0 / (2.0 * best[bus_pos])
        sigma[~np.isfinite(sigma)] = 1.0 / (2.0 * max(r.min(), 1e-6))
    return safety * spread * sigma

