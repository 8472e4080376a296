"""The mesh's trading model as one compiled loop (numba): the optimizer's fast fitness.

:func:`run_kernel` is :func:`backend.mesh.simulate.simulate` over arrays: for every bar of
the merged replay order it runs, in the same order and with the same floating-point
operations (so the same bits), the paper venue (:mod:`backend.venues.paper.engine`: day
roll, resting orders filled at the open with slippage, fee and the cash cap, stop loss
/ take profit inside the bar, mark at the close), the circuit breaker
(:mod:`backend.risk.breaker`, with its latch and the cancel of resting entries on a
trip), compliance (:mod:`backend.compliance.rules`: restricted symbols, trading hours,
daily trade and notional limits, duplicate guard) and risk (:func:`backend.risk.rules.
decide`: halted, already in position, reverse or close, shorts, confidence gate,
fixed-fractional or Kelly sizing from the stop distance, capped by position, symbol and
total exposure and cash, counting the resting orders as in flight).

What it does not model: the portfolio-VaR limit (``risk.var_limit > 0``; callers fall
back to :func:`~backend.mesh.simulate.simulate`, see :func:`backend.backtest.kernel_run.
supported`) and the stale-signal rule, which never fires in a replay (every signal is
decided on the mark of its own bar).

Python's ``min``/``max`` (first argument kept on ties and NaN) are mirrored by
:func:`~backend.backtest.kernel_book.pymin`/``pymax``; sums run in the book's insertion
order.  The parity with ``simulate`` is tested fill by fill
(``tests/unit/backend/backtest/test_kernel_parity.py``).

Units: prices quote/base, quantities base units (signed positions), cash, fees and
notional quote currency, times ns since the Unix epoch (UTC).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from backend.backtest.kernel_book import (
    _REL_EPS,
    NS_PER_DAY,
    execute,
    pymax,
    pymin,
    remove_order,
)

__all__ = [
    "COMPLIANCE_RULES",
    "EXIT_REASONS",
    "RISK_RULES",
    "run_kernel",
]

#: Compliance rule names by code (``check_signal``'s ``rule``).
COMPLIANCE_RULES = ("ok", "restricted_symbol", "trading_hours", "max_trades_per_day",
                    "max_notional_per_day", "duplicate_signal")
#: Risk rule names by code (``decide``'s ``rule``); -1 = not reached.
RISK_RULES = ("ok", "reverse_position", "close_position", "halted", "stale_signal",
              "already_in_position", "short_not_allowed", "min_confidence", "invalid_stop",
              "size_zero")
#: Exit reasons by code (``ExitReason`` values).
EXIT_REASONS = ("entry", "signal", "stop_loss", "take_profit")

NS_PER_HOUR = 3_600_000_000_000
_QTY_EPS = 1e-12  # risk rules: positions below this count as flat
_LIMIT_RTOL = 1e-12  # breaker: drawdown at the limit within round-off trips

# fill kinds: how the client order id is derived from the signal id
KIND_ORDER, KIND_SL, KIND_TP = 0, 1, 2


@njit(cache=True)
def run_kernel(  # type: ignore[no-untyped-def]  # noqa: PLR0912, PLR0915
    b_sym, b_time, b_open, b_high, b_low, b_close,
    s_side, s_conf, s_stop, s_tp,
    n_sym, restricted, fcfg, icfg,
):
    """Replay the merged bars through paper venue, breaker, compliance and risk.

    Parameters
    ----------
    b_sym : int64 (n,)
        Symbol index of each bar of the merged replay order (seq = position + 1).
    b_time : int64 (n,)
        Bar open time, ns UTC.
    b_open, b_high, b_low, b_close : float64 (n,)
        Prices, quote/base.
    s_side : int8 (n,)
        The strategy's signal at the bar's close: +1 buy, -1 sell, 0 none (already 0
        where the strategy runner would not emit one, e.g. before its warm-up).
    s_conf, s_stop, s_tp : float64 (n,)
        Confidence in [0, 1], stop loss and take profit (quote/base) of the signals.
    n_sym : int
        Number of symbols.
    restricted : bool (n_sym,)
        Compliance's restricted list by symbol index.
    fcfg : float64 (14,)
        ``initial_cash, fee_rate, slippage_bps, risk_per_trade, max_position_pct,
        max_symbol_exposure_pct, max_total_exposure_pct, min_confidence,
        daily_drawdown_limit, max_notional_per_day, duplicate_window_s, kelly_fraction,
        kelly_cap, kelly_win_rate``.
    icfg : int64 (6,)
        ``allow_short, max_trades_per_day, trading_hours start, end, kelly (0/1),
        positions (0/1: fill the ``positions`` output; 0 leaves it empty)``.

    Returns
    -------
    tuple
        ``equity`` float64 (n,) (the mark after each bar), ``positions`` float64
        (n, n_sym, 3) (quantity, average price, mark of the open positions after each
        bar; quantity 0 = flat), the fills ``(bar, sym, side, qty, price, fee,
        realized, reason, sig, kind)`` and their count, the signals' decisions ``(bar,
        compliance code, risk code, quantity, reduce_only)`` and their count, and the
        bar index where the breaker tripped (-1 = never).
    """
    n = b_sym.size
    cash0, fee_rate, slip_bps = fcfg[0], fcfg[1], fcfg[2]
    risk_per_trade, max_pos_pct, max_sym_pct, max_tot_pct = fcfg[3], fcfg[4], fcfg[5], fcfg[6]
    min_conf, dd_limit, max_notional, dup_window_s = fcfg[7], fcfg[8], fcfg[9], fcfg[10]
    kelly_fraction, kelly_cap, kelly_win_rate = fcfg[11], fcfg[12], fcfg[13]
    allow_short = icfg[0] != 0
    max_trades = icfg[1]
    h_start, h_end = icfg[2], icfg[3]
    kelly = icfg[4] != 0
    want_positions = icfg[5] != 0
    n_sig = 0
    for i in range(n):
        if s_side[i] != 0:
            n_sig += 1
    slip = slip_bps / 1e4

    # book: cash, fees paid, realized, traded notional of day cnt[3]
    acct = np.zeros(4)
    acct[0] = cash0
    # fill_seq, order_seq, positions inserted, traded-notional day, fills written
    cnt = np.zeros(5, dtype=np.int64)
    cnt[3] = -1
    pos_q = np.zeros(n_sym)
    pos_avg = np.zeros(n_sym)
    pos_sl = np.full(n_sym, np.nan)
    pos_tp = np.full(n_sym, np.nan)
    pos_real = np.zeros(n_sym)
    pos_entry = np.full(n_sym, -1, dtype=np.int64)
    pos_exists = np.zeros(n_sym, dtype=np.bool_)
    ins = np.zeros(n_sym, dtype=np.int64)
    mark_set = np.zeros(n_sym, dtype=np.bool_)
    mark_val = np.zeros(n_sym)
    dse_day, dse_val = -1, 0.0
    # open orders, in submission order
    cap_o = 4 * n_sym + 8
    o_sym = np.zeros(cap_o, dtype=np.int64)
    o_side = np.zeros(cap_o, dtype=np.int64)
    o_qty = np.zeros(cap_o)
    o_reduce = np.zeros(cap_o, dtype=np.bool_)
    o_sl = np.zeros(cap_o)
    o_tp = np.zeros(cap_o)
    o_sig = np.zeros(cap_o, dtype=np.int64)
    o_seq = np.zeros(cap_o, dtype=np.int64)
    o_ref = np.zeros(cap_o)
    n_open = 0
    # breaker
    r_day, r_dse, halted, halted_at = -1, 0.0, False, -1
    # compliance
    c_day, trades_today = -1, 0
    last_t = np.zeros((n_sym, 2), dtype=np.int64)
    last_set = np.zeros((n_sym, 2), dtype=np.bool_)
    # outputs
    equity = np.empty(n)
    positions = np.zeros((n if want_positions else 0, n_sym, 3))
    cap_f = 2 * n_sig + 16  # an order fills once, its position exits once
    f_bar = np.zeros(cap_f, dtype=np.int64)
    f_sym = np.zeros(cap_f, dtype=np.int64)
    f_side = np.zeros(cap_f, dtype=np.int64)
    f_qty = np.zeros(cap_f)
    f_price = np.zeros(cap_f)
    f_fee = np.zeros(cap_f)
    f_real = np.zeros(cap_f)
    f_reason = np.zeros(cap_f, dtype=np.int64)
    f_sig = np.zeros(cap_f, dtype=np.int64)
    f_kind = np.zeros(cap_f, dtype=np.int64)
    d_bar = np.zeros(n_sig, dtype=np.int64)
    d_comp = np.zeros(n_sig, dtype=np.int64)
    d_risk = np.zeros(n_sig, dtype=np.int64)
    d_qty = np.zeros(n_sig)
    d_reduce = np.zeros(n_sig, dtype=np.bool_)
    n_dec = 0
    v_q = np.zeros(n_sym)
    v_mark = np.zeros(n_sym)
    v_in = np.zeros(n_sym, dtype=np.bool_)
    v_order = np.zeros(n_sym, dtype=np.int64)

    for i in range(n):
        s = b_sym[i]
        t = b_time[i]
        op, hi, lo, cl = b_open[i], b_high[i], b_low[i], b_close[i]
        # ---- 1. paper venue: day roll, resting orders at the open, brackets, mark
        day = t // NS_PER_DAY
        if day != dse_day:
            dse_day = day
            total = 0.0  # the book's equity(), in its insertion order
            for k in range(cnt[2]):
                u = ins[k]
                total += pos_q[u] * (mark_val[u] if mark_set[u] else pos_avg[u])
            dse_val = acct[0] + total
        j = 0
        while j < n_open:
            if o_sym[j] != s:
                j += 1
                continue
            sign = o_side[j]
            q = pos_q[s] if pos_exists[s] else 0.0
            qty = o_qty[j]
            if o_reduce[j]:
                if not q * sign < 0:  # rejected: nothing left to reduce
                    n_open = remove_order(j, n_open, o_sym, o_side, o_qty, o_reduce, o_sl,
                                           o_tp, o_sig, o_seq, o_ref)
                    continue
                qty = pymin(qty, abs(q))
            price = op * (1 + slip * sign)
            capped = False
            if sign > 0:
                cost = qty * price * (1 + fee_rate)
                if cost > acct[0]:
                    afford = pymax(acct[0], 0.0) / (price * (1 + fee_rate))
                    if afford <= _REL_EPS * qty:  # rejected: no cash
                        n_open = remove_order(j, n_open, o_sym, o_side, o_qty, o_reduce,
                                               o_sl, o_tp, o_sig, o_seq, o_ref)
                        continue
                    qty, capped = afford, True
            execute(s, sign, qty, price, fee_rate, o_sig[j], KIND_ORDER, -1, o_sl[j], o_tp[j],
                     i, t, acct, cnt, pos_q, pos_avg, pos_sl, pos_tp, pos_real, pos_entry,
                     pos_exists, ins, f_bar, f_sym, f_side, f_qty, f_price, f_fee, f_real,
                     f_reason, f_sig, f_kind)
            if capped:
                acct[0] = pymax(acct[0], 0.0)
            n_open = remove_order(j, n_open, o_sym, o_side, o_qty, o_reduce, o_sl, o_tp,
                                   o_sig, o_seq, o_ref)
        if pos_exists[s] and pos_q[s] != 0:
            q = pos_q[s]
            sl, tp = pos_sl[s], pos_tp[s]
            price, reason = 0.0, -1
            if q > 0:
                if not np.isnan(sl) and lo <= sl:
                    price, reason = pymin(op, sl) * (1 - slip), 2
                elif not np.isnan(tp) and hi >= tp:
                    price, reason = pymax(op, tp), 3
            else:
                if not np.isnan(sl) and hi >= sl:
                    price, reason = pymax(op, sl) * (1 + slip), 2
                elif not np.isnan(tp) and lo <= tp:
                    price, reason = pymin(op, tp), 3
            if reason >= 0:
                if pos_entry[s] < 0:
                    raise ValueError("kernel: a position without an entry order")
                exit_sign = -1 if q > 0 else 1
                exit_kind = KIND_SL if reason == 2 else KIND_TP
                execute(s, exit_sign, abs(q), price, fee_rate, pos_entry[s],
                         exit_kind, reason, np.nan, np.nan, i, t,
                         acct, cnt, pos_q, pos_avg, pos_sl, pos_tp, pos_real, pos_entry,
                         pos_exists, ins, f_bar, f_sym, f_side, f_qty, f_price, f_fee,
                         f_real, f_reason, f_sig, f_kind)
        mark_set[s] = True
        mark_val[s] = cl
        total = 0.0
        for k in range(cnt[2]):
            u = ins[k]
            total += pos_q[u] * (mark_val[u] if mark_set[u] else pos_avg[u])
        eq = acct[0] + total
        equity[i] = eq
        for k in range(cnt[2] if want_positions else 0):
            u = ins[k]
            if pos_q[u] != 0:
                positions[i, u, 0] = pos_q[u]
                positions[i, u, 1] = pos_avg[u]
                positions[i, u, 2] = mark_val[u] if mark_set[u] else pos_avg[u]
        # ---- 2. risk: the breaker on the mark
        if day != r_day or r_dse <= 0:
            r_day, r_dse = day, dse_val
        if not halted:
            dd = 0.0
            if r_dse > 0:
                dd = pymax(0.0, (r_dse - eq) / r_dse)
            if dd >= dd_limit * (1 - _LIMIT_RTOL):
                halted = True
                if halted_at < 0:
                    halted_at = i
                j = 0
                while j < n_open:  # cancel the resting entries, keep the closes
                    if o_reduce[j]:
                        j += 1
                    else:
                        n_open = remove_order(j, n_open, o_sym, o_side, o_qty, o_reduce,
                                               o_sl, o_tp, o_sig, o_seq, o_ref)
        # ---- 3. strategy
        side = s_side[i]
        if side == 0:
            continue
        sign = 1 if side > 0 else -1
        side_ix = 0 if sign > 0 else 1
        entry, stop, target, conf = cl, s_stop[i], s_tp[i], s_conf[i]
        d_bar[n_dec] = i
        d_risk[n_dec] = -1
        # ---- 4. compliance
        notional_today = acct[3] if cnt[3] == day else 0.0
        if day != c_day:
            c_day, trades_today = day, 0
        hour = (t // NS_PER_HOUR) % 24
        if h_start < h_end:
            open_hours = h_start <= hour < h_end
        elif h_start > h_end:
            open_hours = hour >= h_start or hour < h_end
        else:
            open_hours = False
        comp = 0
        if restricted[s]:
            comp = 1
        elif not open_hours:
            comp = 2
        elif trades_today >= max_trades:
            comp = 3
        elif notional_today >= max_notional:
            comp = 4
        elif last_set[s, side_ix]:
            age_ns = t - last_t[s, side_ix]
            if age_ns >= 0 and age_ns <= dup_window_s * 1_000_000_000:
                comp = 5
        d_comp[n_dec] = comp
        n_dec += 1
        if comp != 0:
            continue
        trades_today += 1
        last_t[s, side_ix] = t
        last_set[s, side_ix] = True
        # ---- 5. risk: the portfolio view with the resting orders in flight
        n_v = 0
        for k in range(cnt[2]):
            u = ins[k]
            v_in[u] = False
            if pos_q[u] != 0:
                v_in[u] = True
                v_q[u] = pos_q[u]
                v_mark[u] = mark_val[u] if mark_set[u] else pos_avg[u]
                v_order[n_v] = u
                n_v += 1
        for u in range(n_sym):
            if not pos_exists[u]:
                v_in[u] = False
        v_cash = acct[0]
        for j in range(n_open):
            if o_reduce[j] or not o_qty[j] > 0:
                continue
            u = o_sym[j]
            if v_in[u]:
                v_q[u] = v_q[u] + o_side[j] * o_qty[j]
            else:
                v_in[u] = True
                v_q[u] = 0.0 + o_side[j] * o_qty[j]
                v_mark[u] = o_ref[j]
                v_order[n_v] = u
                n_v += 1
            if o_side[j] > 0:
                v_cash -= o_qty[j] * o_ref[j] * (1 + fee_rate)
        pos = v_q[s] if v_in[s] else 0.0
        if abs(pos) <= _QTY_EPS:
            pos = 0.0
        rule, qty, reduce_only = -1, 0.0, False
        sized = False
        closing = 0.0
        if halted:
            rule = 2 if pos * sign < 0 else 3
        elif pos * sign > 0:
            rule = 5
        elif pos != 0.0:
            if allow_short and not conf < min_conf:
                closing, sized = abs(pos), True
            else:
                rule = 2
        elif sign < 0 and not allow_short:
            rule = 6
        elif conf < min_conf:
            rule = 7
        else:
            sized = True
        if sized:
            srule, new_qty = 0, 0.0
            dist = (entry - stop) * sign
            if not dist > 0:
                srule = 8
            else:
                fraction = risk_per_trade
                if kelly:
                    p = kelly_win_rate if kelly_win_rate > 0 else conf
                    reward = (target - entry) * sign
                    b = reward / dist
                    f = -np.inf if not b > 0 else p - (1.0 - p) / b
                    if not f > 0:
                        srule = 9
                    fraction = pymin(kelly_fraction * f, kelly_cap)
                if srule == 0:
                    new_qty = eq * fraction / dist
                    notional = new_qty * entry
                    ex_sym = abs(v_q[s] * v_mark[s]) if v_in[s] else 0.0
                    total = 0.0
                    for k in range(n_v):
                        u = v_order[k]
                        total += abs(v_q[u] * v_mark[u])
                    sym_exposure = 0.0 if closing != 0.0 else ex_sym
                    total_exposure = total - (ex_sym if closing != 0.0 else 0.0)
                    cap = max_pos_pct * eq
                    cap = pymin(cap, max_sym_pct * eq - sym_exposure)
                    cap = pymin(cap, max_tot_pct * eq - total_exposure)
                    if sign > 0:
                        c = v_cash - closing * entry * (1 + fee_rate)
                        cap = pymin(cap, c / (1 + fee_rate))
                    if cap < notional:
                        notional = 0.0 if cap < 0.0 else cap
                        new_qty = notional / entry
                    if new_qty <= 0 or notional <= 0 or notional < 0.0:
                        srule = 9
            if closing != 0.0:  # a reversal, or a close when the new leg cannot be sized
                if srule == 0:
                    rule, qty = 1, closing + new_qty
                else:
                    rule = 2
            elif srule == 0:
                rule, qty = 0, new_qty
            else:
                rule = srule
        if rule == 2:
            qty, reduce_only = abs(pos), True
        d_risk[n_dec - 1] = rule
        if rule > 2:
            continue
        d_qty[n_dec - 1] = qty
        d_reduce[n_dec - 1] = reduce_only
        # ---- 6. execution: the order rests until the symbol's next bar
        book_q = pos_q[s] if pos_exists[s] else 0.0
        if not qty > 0 or (reduce_only and not book_q * sign < 0):
            continue  # the venue rejects it
        if n_open >= cap_o:
            raise ValueError("kernel: open order capacity exceeded")
        o_sym[n_open] = s
        o_side[n_open] = sign
        o_qty[n_open] = qty
        o_reduce[n_open] = reduce_only
        o_sl[n_open] = np.nan if reduce_only else stop
        o_tp[n_open] = np.nan if reduce_only else target
        o_sig[n_open] = i
        o_seq[n_open] = cnt[1]
        o_ref[n_open] = entry
        cnt[1] += 1
        n_open += 1
    nf = cnt[4]
    return (equity, positions, f_bar[:nf], f_sym[:nf], f_side[:nf], f_qty[:nf], f_price[:nf],
            f_fee[:nf], f_real[:nf], f_reason[:nf], f_sig[:nf], f_kind[:nf], d_bar[:n_dec],
            d_comp[:n_dec], d_risk[:n_dec], d_qty[:n_dec], d_reduce[:n_dec], halted_at)
