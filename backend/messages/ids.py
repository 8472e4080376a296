"""Message and order ids: random ids, deterministic ids and client order ids.

A redelivered input must produce the *same* output ids, so everything derived from an
input (signal ids, client order ids, fill ids) comes from :func:`stable_id`; only ids of
fresh facts use :func:`new_id`.
"""

from __future__ import annotations

import hashlib
import uuid


def new_id() -> str:
    """A random unique message id (32 hex chars)."""
    return uuid.uuid4().hex


def stable_id(*parts: object) -> str:
    """Deterministic 32-hex id from ``parts`` (SHA-256 prefix).

    Used so that a redelivered input produces the *same* output id, which makes
    every consumer idempotent by message id.
    """
    raw = "|".join(str(p) for p in parts).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def client_order_id_for(signal_id: str, leg: str = "o") -> str:
    """Deterministic client order id for the order born from ``signal_id``.

    ``leg`` distinguishes several orders from one signal (``"o"`` the order itself,
    ``"c"`` a close of the opposite position).  Format ``tm-<leg>-<24 hex>`` (at most
    30 chars: fits every venue's limit, e.g. Binance 36).
    """
    return f"tm-{leg}-{stable_id('coid', signal_id, leg)[:24]}"
