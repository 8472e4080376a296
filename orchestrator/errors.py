"""Errors of the control plane, each with the HTTP status the API maps it to."""

from __future__ import annotations

from backend.channels import compact_symbol


class ControlError(Exception):
    """A request the control plane cannot carry out; ``status`` is the HTTP code."""

    status = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ControlError):
    """Unknown agent, symbol or run."""

    status = 404


class Conflict(ControlError):
    """The request contradicts the current state (e.g. agent already running)."""

    status = 409


class Invalid(ControlError):
    """Well-formed but unusable input (e.g. an unknown strategy name)."""

    status = 422


class Unavailable(ControlError):
    """A dependency (Redis) is unreachable."""

    status = 503


def resolve_symbol(raw: str, known: list[str]) -> str:
    """Map ``ETH/BTC``, ``ETHBTC``, ``ETH-BTC``, ``ETH_BTC`` (any case) to a known symbol.

    Raises
    ------
    NotFound
        ``raw`` is none of ``known``; the message lists them.
    """
    want = compact_symbol(raw.strip())
    for sym in known:
        if compact_symbol(sym) == want:
            return sym
    raise NotFound(f"unknown symbol {raw!r}; known symbols: {', '.join(known)}")
