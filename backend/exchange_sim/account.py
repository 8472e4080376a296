"""The simulated account's money: free and locked balances per asset, fills and fees.

No lock of its own: :class:`backend.exchange_sim.book.Book` calls it under the book's
lock.  Amounts are :class:`~decimal.Decimal` in units of their asset; a price is quote per
base.

Fees (``fee_rate`` x notional, taker): ``fee_asset="quote"`` charges every trade in the
quote asset; ``fee_asset="base"`` charges a BUY in the base asset it receives (Binance spot
without BNB) and a SELL in the quote asset it receives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_DOWN, Decimal

from backend.exchange_sim.model import Q8, BinanceError, Market

D = Decimal
FEE_ASSETS = ("quote", "base")


def insufficient() -> BinanceError:
    """Binance's -2010 for a balance that cannot pay."""
    return BinanceError(-2010, "Account has insufficient balance for requested action.")


class Account:
    """Balances of one account.

    Parameters
    ----------
    assets : iterable of str
        Assets that always have a row (zero when not funded).
    balances : mapping of str to str or Decimal
        Initial free balance per asset.
    fee_rate : Decimal
        Taker fee as a fraction of the notional (0.001 = 0.1%).
    fee_asset : {"quote", "base"}
        Which asset a BUY pays its fee in (a SELL always pays in quote).

    Raises
    ------
    ValueError
        ``fee_asset`` is neither ``"quote"`` nor ``"base"``, or a balance is negative or
        not a number.
    """

    def __init__(self, assets: Iterable[str], balances: Mapping[str, str | Decimal],
                 fee_rate: Decimal, fee_asset: str) -> None:
        if fee_asset not in FEE_ASSETS:
            raise ValueError(f"fee_asset must be 'quote' or 'base', not {fee_asset!r}")
        if fee_rate < 0:
            raise ValueError(f"fee_rate must be >= 0, not {fee_rate}")
        self.fee_rate, self.fee_asset = fee_rate, fee_asset
        self.free: dict[str, Decimal] = {a: D(0) for a in assets}
        self.locked: dict[str, Decimal] = {a: D(0) for a in self.free}
        for asset, amount in balances.items():
            try:
                value = D(str(amount))
            except ArithmeticError:
                raise ValueError(f"balance of {asset}: not a number: {amount!r}") from None
            if not value.is_finite() or value < 0:
                raise ValueError(f"balance of {asset} must be a number >= 0, not {amount!r}")
            self.free[asset] = value
            self.locked.setdefault(asset, D(0))

    # ------------------------------------------------------------------ locks
    def lock(self, asset: str, amount: Decimal) -> None:
        """Move ``amount`` of ``asset`` from free to locked (-2010 if not free)."""
        if self.free.get(asset, D(0)) < amount:
            raise insufficient()
        self.free[asset] -= amount
        self.locked[asset] += amount

    def release(self, asset: str, amount: Decimal) -> None:
        """Move ``amount`` of ``asset`` back from locked to free."""
        self.locked[asset] -= amount
        self.free[asset] += amount

    # ------------------------------------------------------------------ fills
    def fee(self, m: Market, side: str, qty: Decimal, cost: Decimal) -> tuple[Decimal, str]:
        """Fee of a trade of ``qty`` (base) for ``cost`` (quote): ``(amount, asset)``."""
        if side == "BUY" and self.fee_asset == "base":
            return (qty * self.fee_rate).quantize(Q8), m.base
        return (cost * self.fee_rate).quantize(Q8), m.quote

    @staticmethod
    def cost(qty: Decimal, price: Decimal) -> Decimal:
        """Notional of ``qty`` at ``price`` in quote, truncated to 8 decimals."""
        return (qty * price).quantize(Q8, rounding=ROUND_DOWN)

    def require(self, m: Market, side: str, qty: Decimal, price: Decimal) -> None:
        """Raise -2010 unless the free balance pays a trade of ``qty`` at ``price``."""
        cost = self.cost(qty, price)
        fee, fee_asset = self.fee(m, side, qty, cost)
        if side == "BUY":
            need = cost + (fee if fee_asset == m.quote else 0)
            if self.free[m.quote] < need:
                raise insufficient()
        elif self.free[m.base] < qty:
            raise insufficient()

    def fill(self, m: Market, side: str, qty: Decimal, price: Decimal
             ) -> tuple[Decimal, Decimal, str]:
        """Book a taker trade of ``qty`` at ``price`` from the free balances.

        Returns
        -------
        tuple of (Decimal, Decimal, str)
            ``(cost in quote, fee, fee asset)``.

        Raises
        ------
        BinanceError
            -2010 when the free balance does not pay it (nothing is changed).
        """
        self.require(m, side, qty, price)
        cost = self.cost(qty, price)
        fee, fee_asset = self.fee(m, side, qty, cost)
        if side == "BUY":
            self.free[m.quote] -= cost + (fee if fee_asset == m.quote else 0)
            self.free[m.base] += qty - (fee if fee_asset == m.base else 0)
        else:
            self.free[m.base] -= qty
            self.free[m.quote] += cost - fee
        return cost, fee, fee_asset

    def snapshot(self) -> dict[str, tuple[Decimal, Decimal]]:
        """``asset -> (free, locked)``."""
        return {a: (self.free[a], self.locked[a]) for a in self.free}
