"""The loopback fake Binance of the tests: the exchange simulator under its old names.

Thin re-export of :mod:`backend.exchange_sim` (``FakeBinance`` is
:class:`backend.exchange_sim.ExchangeSim`, whose defaults are the ones the tests were
written against: the sample data, quote-asset fees, ``dup_scope="all"``).  New code
imports the package directly.
"""

from __future__ import annotations

from backend.exchange_sim.faults import Fault
from backend.exchange_sim.model import Request
from backend.exchange_sim.routes import PRIVATE
from backend.exchange_sim.server import ROOT, SAMPLE_SYMBOLS, TEST_KEY, TEST_SECRET
from backend.exchange_sim.server import ExchangeSim as FakeBinance

__all__ = ["PRIVATE", "ROOT", "SAMPLE_SYMBOLS", "TEST_KEY", "TEST_SECRET", "FakeBinance",
           "Fault", "Request"]
