"""Render an :class:`~backend.rest.report.EvaluationReport` as Markdown and HTML with charts.

Charts are inline SVG written by hand (no JavaScript, no CDN, no plotting dependency):
the HTML file is self-contained and works offline; the Markdown file links SVG files
written beside it (:func:`write_report`).  Two charts: equity with its drawdown below,
and net P&L per symbol.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from backend.rest.report import BreakdownRow, EvaluationReport, ParamSuggestion

W, H, PAD = 720, 220, 48
GREEN, RED, BLUE, GREY = "#2e7d32", "#c62828", "#1565c0", "#9e9e9e"


def _day(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M")


def _num(x: float | None, spec: str = ".6g") -> str:
    return "-" if x is None else format(x, spec)


def _pct(x: float | None, spec: str = ".2%") -> str:
    return "-" if x is None else format(x, spec)


def _dur(s: float | None) -> str:
    if s is None:
        return "-"
    h, rem = divmod(int(round(s)), 3600)
    return f"{h}h{rem // 60:02d}m" if h else f"{rem // 60}m{rem % 60:02d}s"


# ---------------------------------------------------------------- SVG
def _scale(vals: Sequence[float], lo_px: float, hi_px: float,
           ) -> tuple[float, float, Callable[[float], float]]:
    lo, hi = min(vals), max(vals)
    if hi == lo:
        lo, hi = lo - 1e-12 - abs(lo) * 1e-6, hi + 1e-12 + abs(hi) * 1e-6
    return lo, hi, (lambda v: hi_px - (v - lo) / (hi - lo) * (hi_px - lo_px))


def _svg(body: str, height: int, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" '
            f'viewBox="0 0 {W} {height}" font-family="sans-serif" font-size="11">'
            f'<title>{html.escape(title)}</title><rect width="100%" height="100%" fill="white"/>'
            f"{body}</svg>")


def _line(xs: Sequence[float], ys: Sequence[float], top: float, bottom: float, color: str,
          label: str, fmt: str, fill: bool = False) -> str:
    x0, x1 = min(xs), max(xs)
    span = (x1 - x0) or 1.0
    lo, hi, sy = _scale(ys, top, bottom)
    pts = [(PAD + (x - x0) / span * (W - 2 * PAD), sy(y)) for x, y in zip(xs, ys, strict=True)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
    out = [f'<line x1="{PAD}" y1="{bottom}" x2="{W - PAD}" y2="{bottom}" stroke="{GREY}"/>',
           f'<line x1="{PAD}" y1="{top}" x2="{PAD}" y2="{bottom}" stroke="{GREY}"/>',
           f'<text x="{PAD}" y="{top - 6}" fill="{color}">{html.escape(label)}</text>',
           f'<text x="{PAD - 4}" y="{top + 4}" text-anchor="end">{format(hi, fmt)}</text>',
           f'<text x="{PAD - 4}" y="{bottom}" text-anchor="end">{format(lo, fmt)}</text>']
    if fill:
        out.append(f'<polygon points="{pts[0][0]:.1f},{top:.1f} {path} {pts[-1][0]:.1f},'
                   f'{top:.1f}" fill="{color}" fill-opacity="0.25" stroke="none"/>')
    out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
    return "".join(out)


def equity_svg(report: EvaluationReport) -> str | None:
    """Equity (top) and drawdown from the running peak (bottom, downwards); ``None``
    without at least two curve points."""
    pts = report.equity
    if len(pts) < 2:
        return None
    xs = [p.bar_time / 1e9 for p in pts]
    eq = _line(xs, [p.equity for p in pts], 24, 150, BLUE, "equity (quote)", ".6g")
    dd = _line(xs, [-p.drawdown for p in pts], 180, 270, RED, "drawdown", ".2%", fill=True)
    axis = (f'<text x="{PAD}" y="292">{_day(pts[0].bar_time)}</text>'
            f'<text x="{W - PAD}" y="292" text-anchor="end">{_day(pts[-1].bar_time)}</text>')
    return _svg(eq + dd + axis, 300, "Equity and drawdown")


def pnl_svg(rows: Sequence[BreakdownRow], title: str = "Net P&L per symbol") -> str | None:
    """Horizontal bars of net P&L per row (green gains, red losses); ``None`` if empty."""
    if not rows:
        return None
    bar_h, gap = 18, 8
    height = 30 + len(rows) * (bar_h + gap)
    left, right = 140, W - 120
    lim = max(abs(r.net_pnl) for r in rows) or 1.0
    zero = (left + right) / 2
    half = (right - left) / 2
    out = [f'<text x="{left}" y="16">{html.escape(title)}</text>',
           f'<line x1="{zero}" y1="22" x2="{zero}" y2="{height - 4}" stroke="{GREY}"/>']
    for i, r in enumerate(rows):
        y = 26 + i * (bar_h + gap)
        w = abs(r.net_pnl) / lim * half
        x = zero if r.net_pnl >= 0 else zero - w
        color = GREEN if r.net_pnl >= 0 else RED
        out.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">'
                   f"{html.escape(r.name)}</text>")
        out.append(f'<rect x="{x:.1f}" y="{y}" width="{max(w, 1):.1f}" height="{bar_h}" '
                   f'fill="{color}"/>')
        out.append(f'<text x="{right + 6}" y="{y + 13}">{r.net_pnl:.6g} ({r.trades} trades)'
                   "</text>")
    return _svg("".join(out), height, title)


# ---------------------------------------------------------------- tables
def _table(rows: Sequence[BreakdownRow], first: str) -> list[list[str]]:
    head = [first, "trades", "win rate", "net P&L", "fees", "avg return", "avg duration"]
    body = [[r.name, str(r.trades), _pct(r.win_rate, ".1%"), _num(r.net_pnl), _num(r.fees),
             _pct(r.avg_return), _dur(r.avg_duration_s)] for r in rows]
    return [head, *body]


def _summary(rep: EvaluationReport) -> list[list[str]]:
    return [["figure", "value"],
            ["window", f"{_day(rep.since) if rep.since else 'start'} .. {_day(rep.until)}"],
            ["equity", f"{_num(rep.start_equity)} -> {_num(rep.end_equity)} "
                       f"({_pct(rep.equity_return)})"],
            ["closed trades", f"{rep.trades} ({rep.wins} won, {rep.losses} lost; "
                              f"{rep.open_trades} open)"],
            ["win rate", _pct(rep.win_rate, ".1%")],
            ["net P&L", f"{_num(rep.net_pnl)} (gross {_num(rep.gross_pnl)}, fees "
                        f"{_num(rep.fees)})"],
            ["profit factor", _num(rep.profit_factor, ".3g")],
            ["max drawdown", _pct(rep.max_drawdown)],
            ["Sharpe / Sortino", f"{_num(rep.sharpe, '.2f')} / {_num(rep.sortino, '.2f')}"],
            ["average trade duration", _dur(rep.avg_trade_duration_s)],
            ["best / worst symbol", f"{rep.best_symbol or '-'} / {rep.worst_symbol or '-'}"],
            ["best / worst strategy", f"{rep.best_strategy or '-'} / "
                                      f"{rep.worst_strategy or '-'}"]]


def _suggestions(sugs: Sequence[ParamSuggestion]) -> list[list[str]]:
    head = ["symbol", "strategy", "run", "status", "score (OOS)", "running", "changes",
            "suggested", "why"]
    body = [[s.symbol, s.strategy, s.run_id, s.status, _num(s.score, ".4g"),
             _num(s.baseline, ".4g") if s.baseline_measured else "not measured",
             ", ".join(f"{c.name}: {c.current} -> {c.suggested}" for c in s.changes) or "-",
             "yes" if s.suggested else "no", s.reason] for s in sugs]
    return [head, *body]


def _md_table(rows: list[list[str]]) -> str:
    esc = [[c.replace("|", "\\|") for c in r] for r in rows]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(esc[0])]
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return "\n".join(lines)


def _html_table(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _sections(rep: EvaluationReport) -> list[tuple[str, list[list[str]]]]:
    return [("Summary", _summary(rep)), ("By symbol", _table(rep.by_symbol, "symbol")),
            ("By strategy", _table(rep.by_strategy, "strategy")),
            ("By regime (of the entry signal)", _table(rep.by_regime, "regime")),
            ("Suggested parameter changes (latest optimizer runs)",
             _suggestions(rep.suggestions))]


def to_markdown(rep: EvaluationReport, charts: dict[str, str] | None = None) -> str:
    """The report as Markdown; ``charts`` maps a title to an image path to link."""
    out = [f"# Trading mesh report ({_day(rep.generated_ts)} UTC)", ""]
    for title, path in (charts or {}).items():
        out += [f"![{title}]({path})", ""]
    for title, rows in _sections(rep):
        out += [f"## {title}", "", _md_table(rows) if len(rows) > 1 else "None.", ""]
    return "\n".join(out)


def to_html(rep: EvaluationReport) -> str:
    """The report as one self-contained HTML page (inline SVG charts)."""
    charts = "".join(f"<figure>{svg}</figure>" for svg in
                     (equity_svg(rep), pnl_svg(rep.by_symbol)) if svg)
    body = "".join(f"<h2>{html.escape(t)}</h2>"
                   + (_html_table(rows) if len(rows) > 1 else "<p>None.</p>")
                   for t, rows in _sections(rep))
    style = ("body{font-family:sans-serif;margin:2em;max-width:1100px}"
             "table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}")
    title = f"Trading mesh report ({_day(rep.generated_ts)} UTC)"
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{style}</style></head><body><h1>{title}</h1>{charts}{body}</body></html>")


def write_report(rep: EvaluationReport, out: Path, fmt: str = "both") -> list[Path]:
    """Write the report to ``out`` (a path stem: ``.md``/``.html`` are added or replaced).

    ``fmt``: ``md`` (Markdown plus ``<stem>-equity.svg`` and ``<stem>-pnl.svg``),
    ``html`` (one self-contained page) or ``both``.  Returns the files written.
    """
    out = out.with_suffix("") if out.suffix in (".md", ".html", ".htm") else out
    out.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if fmt in ("md", "both"):
        charts: dict[str, str] = {}
        for title, suffix, svg in (("Equity and drawdown", "equity", equity_svg(rep)),
                                   ("Net P&L per symbol", "pnl", pnl_svg(rep.by_symbol))):
            if svg:
                path = out.parent / f"{out.name}-{suffix}.svg"
                path.write_text(svg, encoding="utf-8")
                written.append(path)
                charts[title] = path.name
        md = out.parent / f"{out.name}.md"
        md.write_text(to_markdown(rep, charts), encoding="utf-8")
        written.append(md)
    if fmt in ("html", "both"):
        page = out.parent / f"{out.name}.html"
        page.write_text(to_html(rep), encoding="utf-8")
        written.append(page)
    return written
