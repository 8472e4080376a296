"""The paper book of the compiled kernel (:mod:`backend.backtest.kernel`): fills and marks.

The numba twins of :mod:`backend.venues.paper.engine`'s ``_execute`` (one fill into the
positions, cash, fees and the day's traded notional) and of the removal of an open order
(the kernel sums the book's equity itself, in the book's insertion order: a call per bar
with array arguments costs more than the whole bar); :func:`pymin`/:func:`pymax` are
Python's ``min``/``max`` of two floats (the first kept on ties and NaN).  State lives in arrays the
kernel owns (see ``run_kernel``'s locals).

Units: prices quote/base, quantities base units (signed positions), cash, fees and
notional quote currency, times ns since the Unix epoch (UTC).
"""

from __future__ import annotations

import numpy as np
from numba import njit

NS_PER_DAY = 86_400_000_000_000
_REL_EPS = 1e-9   # paper engine: a remaining quantity below this fraction counts as zero


@njit(cache=True, inline="always")
def pymin(a: float, b: float) -> float:
    return b if b < a else a


@njit(cache=True, inline="always")
def pymax(a: float, b: float) -> float:
    return b if b > a else a


@njit(cache=True)
def execute(  # type: ignore[no-untyped-def]
    s, sign, qty, price, fee_rate, sig, kind, reason, sl, tp, i, ts,
    acct, cnt, pos_q, pos_avg, pos_sl, pos_tp, pos_real, pos_entry, pos_exists, ins,
    f_bar, f_sym, f_side, f_qty, f_price, f_fee, f_real, f_reason, f_sig, f_kind,
):
    """``engine._execute``: one fill into the book and the fill arrays.  ``reason`` -1 =
    entry or signal by what the fill did; ``sl``/``tp`` NaN = none."""
    if not pos_exists[s]:
        pos_exists[s] = True
        ins[cnt[2]] = s
        cnt[2] += 1
        pos_q[s] = 0.0
        pos_avg[s] = 0.0
        pos_sl[s] = np.nan
        pos_tp[s] = np.nan
        pos_real[s] = 0.0
        pos_entry[s] = -1
    q = pos_q[s]
    old_avg = pos_avg[s]
    notional = qty * price
    fee = notional * fee_rate
    closed = 0.0 if q * sign >= 0 else pymin(qty, abs(q))
    realized = (price - old_avg) * closed * (1.0 if q > 0 else -1.0)
    rest = qty - closed
    if closed == 0.0:
        new_q = q + sign * qty
        avg = (abs(q) * old_avg + notional) / abs(new_q)
        fresh = q == 0
    elif rest > _REL_EPS * qty:
        new_q, avg, fresh = sign * rest, price, True
    else:
        new_q = q + sign * closed
        if abs(new_q) <= _REL_EPS * abs(q):
            new_q = 0.0
        avg = old_avg if new_q != 0.0 else 0.0
        fresh = False
    if new_q == 0.0:
        pos_sl[s] = np.nan
        pos_tp[s] = np.nan
    elif fresh:
        pos_sl[s] = sl
        pos_tp[s] = tp
        pos_entry[s] = sig
    else:
        if not np.isnan(sl):
            pos_sl[s] = sl
        if not np.isnan(tp):
            pos_tp[s] = tp
    pos_q[s] = new_q
    pos_avg[s] = avg
    pos_real[s] = pos_real[s] + realized
    if sign > 0:
        acct[0] += -(notional + fee)
    else:
        acct[0] += notional - fee
    acct[1] += fee
    acct[2] += realized
    day = ts // NS_PER_DAY
    if cnt[3] != day:
        cnt[3] = day
        acct[3] = 0.0
    acct[3] = acct[3] + notional
    cnt[0] += 1  # fill_seq
    k = cnt[4]
    if k >= f_bar.size:
        raise ValueError("kernel: fill capacity exceeded")
    f_bar[k] = i
    f_sym[k] = s
    f_side[k] = sign
    f_qty[k] = qty
    f_price[k] = price
    f_fee[k] = fee
    f_real[k] = realized
    f_reason[k] = reason if reason >= 0 else (0 if closed == 0.0 else 1)
    f_sig[k] = sig
    f_kind[k] = kind
    cnt[4] = k + 1


@njit(cache=True)
def remove_order(k, n_open, o_sym, o_side, o_qty, o_reduce, o_sl, o_tp, o_sig, o_seq, o_ref):  # type: ignore[no-untyped-def]
    for j in range(k, n_open - 1):
        o_sym[j] = o_sym[j + 1]
        o_side[j] = o_side[j + 1]
        o_qty[j] = o_qty[j + 1]
        o_reduce[j] = o_reduce[j + 1]
        o_sl[j] = o_sl[j + 1]
        o_tp[j] = o_tp[j + 1]
        o_sig[j] = o_sig[j + 1]
        o_seq[j] = o_seq[j + 1]
        o_ref[j] = o_ref[j + 1]
    return n_open - 1
