"""Tariff pricing: an exchange is paid at the buy tariff when importing and at the sell
tariff when exporting (``prices``: ``tariff_buy_per_mwh``, ``tariff_sell_per_mwh`` per period).

One place for the rule: :func:`add_tariff` writes it into a model (import and export parts
of each exchange), :func:`tariff_prices` and :func:`tariff_payments` settle given exchanges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .linear import LinearModel, Variables
from .lv_community import CommunityBlocks

BUY, SELL = "tariff_buy_per_mwh", "tariff_sell_per_mwh"


def tariff_rates(prices: pd.DataFrame, periods) -> tuple[np.ndarray, np.ndarray]:
    """(buy, sell) tariff per period (cost units per MWh)."""
    return (prices[BUY].loc[periods].to_numpy(), prices[SELL].loc[periods].to_numpy())


def tariff_prices(prices: pd.DataFrame, periods, p_ex_mw: np.ndarray) -> np.ndarray:
    """The price each exchange (community × period, import positive) is settled at."""
    buy, sell = tariff_rates(prices, periods)
    return np.where(np.asarray(p_ex_mw) >= 0, buy[None, :], sell[None, :])


def tariff_payments(prices: pd.DataFrame, periods, p_ex_mw: np.ndarray,
                    step_h: float) -> np.ndarray:
    """What each exchange (community × period) pays at the tariff."""
    p = np.asarray(p_ex_mw, dtype=float)
    return tariff_prices(prices, periods, p) * p * step_h


@dataclass(frozen=True)
class Tariff:
    """Import and export parts of every community's exchange, paid at the tariff."""

    p_import: Variables
    p_export: Variables
    cols: np.ndarray
    coefs: np.ndarray

    def payment(self, x: np.ndarray) -> float:
        return float(self.coefs @ x[self.cols])

    def payment_by_period(self, x: np.ndarray) -> np.ndarray:
        """Tariff payments per period (summed over communities)."""
        n = self.p_import.shape[1]
        return (self.coefs * x[self.cols]).reshape(-1, n).sum(axis=0)


def add_tariff(model: LinearModel, step_h: float, prices: pd.DataFrame,
               communities: list[CommunityBlocks], periods: pd.DatetimeIndex) -> Tariff:
    """Split each exchange into import and export parts and price them at the tariff.

    ``prices`` has the columns ``tariff_buy_per_mwh`` and ``tariff_sell_per_mwh`` for
    ``periods``.
    """
    names = pd.Index([c.community.name for c in communities], name="community")
    caps = np.array([[c.community.s_max_mva] for c in communities])
    p_imp = model.add_variables("tariff.p_import_mw", (names, periods), 0.0, caps)
    p_exp = model.add_variables("tariff.p_export_mw", (names, periods), 0.0, caps)
    split = model.add_constraints("tariff.split", (names, periods), "==", 0.0)
    p_ex = np.vstack([c.p_ex.ids for c in communities]).reshape(p_imp.shape)
    model.add_terms(split.ids, p_ex, 1.0)
    model.add_terms(split.ids, p_imp.ids, -1.0)
    model.add_terms(split.ids, p_exp.ids, 1.0)
    buy, sell = tariff_rates(prices, periods)
    cols = np.concatenate([p_imp.ids.ravel(), p_exp.ids.ravel()])
    coefs = np.concatenate([np.broadcast_to(step_h * buy, p_imp.shape).ravel(),
                            np.broadcast_to(-step_h * sell, p_exp.shape).ravel()])
    model.add_objective(cols, coefs)
    return Tariff(p_import=p_imp, p_export=p_exp, cols=cols, coefs=coefs)
