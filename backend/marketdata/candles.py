"""OHLCV candles from CSV files: loading and validation.

File format
-----------
A header row naming (case-insensitively, in any order) at least the columns
``timestamp, open, high, low, close, volume``; extra columns are ignored.  One row
per bar:

* ``timestamp`` -- the bar's **open** time, either ISO 8601 (``2018-01-10T04:55:00Z``,
  with an offset, or naive = UTC, or a date only ``2018-01-10``) or an epoch number
  in seconds, milliseconds, microseconds or nanoseconds (unit inferred by magnitude,
  see :func:`parse_timestamp`).
* ``open, high, low, close`` -- prices in quote currency per base unit, > 0.
* ``volume`` -- traded volume in base units, >= 0.

Rows must be sorted by time, strictly ascending (a duplicate timestamp is an error).
Gaps (missing bars) are allowed: nothing here assumes a regular time index.

Every problem raises :class:`DataError` naming the file, the 1-based line number
(the header is line 1) and the column, e.g.
``data/x.csv line 17, column 'high': 'abc' is not a number``.

File names follow ``BASE_QUOTE-<timeframe>.csv`` (``ETH_BTC-5m.csv`` holds ETH/BTC).
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["COLUMNS", "Candles", "DataError", "load_candles", "load_dir", "symbol_file"]
__all__ += ["parse_timestamp", "symbol_from_filename"]

#: Required columns, in canonical order.
COLUMNS: tuple[str, ...] = ("timestamp", "open", "high", "low", "close", "volume")
_PRICE_COLS = ("open", "high", "low", "close")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_S = 1_000_000_000
_FILE_RE = re.compile(r"^([A-Za-z0-9]+)_([A-Za-z0-9]+)(?:-([A-Za-z0-9]+))?$")
_LONG_FRACTION = re.compile(r"\.\d{7,}")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class DataError(ValueError):
    """A market-data file is missing or invalid; the message names file, line and column."""


@dataclass(frozen=True, eq=False)
class Candles:
    """OHLCV bars of one symbol, as parallel numpy arrays of equal length ``n``.

    Attributes
    ----------
    symbol : str
        ``BASE/QUOTE``, e.g. ``"ETH/BTC"``.
    time : numpy.ndarray
        Shape ``(n,)``, int64: bar open time in ns since the Unix epoch (UTC),
        strictly increasing (gaps allowed).
    open, high, low, close : numpy.ndarray
        Shape ``(n,)``, float64: prices in quote currency per base unit.
    volume : numpy.ndarray
        Shape ``(n,)``, float64: traded volume in base units.
    """

    symbol: str
    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.time)
        for name in ("open", "high", "low", "close", "volume"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Candles: {name} has {len(getattr(self, name))} rows, time {n}")

    def __len__(self) -> int:
        return len(self.time)

    def slice(self, start: int | None = None, stop: int | None = None) -> Candles:
        """Bars ``[start:stop]`` as a new :class:`Candles` (array views, no copy)."""
        s = slice(start, stop)
        return Candles(self.symbol, self.time[s], *(getattr(self, k)[s] for k in COLUMNS[1:]))

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame with columns ``open, high, low, close, volume``.

        The index is a tz-aware (UTC) :class:`pandas.DatetimeIndex` named ``time``
        holding the bar open times (``frame.index.asi8`` gives the int64 ns).
        """
        index = pd.DatetimeIndex(pd.to_datetime(self.time, unit="ns", utc=True), name="time")
        return pd.DataFrame({k: getattr(self, k) for k in COLUMNS[1:]}, index=index)


# ------------------------------------------------------------------ parsing helpers
def symbol_from_filename(path: Path | str) -> str:
    """``ETH_BTC-5m.csv`` -> ``"ETH/BTC"``.

    Raises
    ------
    DataError
        The name is not ``BASE_QUOTE[-timeframe].csv``.  A compact name such as
        ``ETHBTC.csv`` is ambiguous (where does the base end?), so the symbol must
        then be passed explicitly.
    """
    stem = Path(path).stem
    m = _FILE_RE.match(stem)
    if m is None:
        raise DataError(
            f"{path}: cannot tell the symbol from the file name {Path(path).name!r} "
            "(expected BASE_QUOTE-<timeframe>.csv, e.g. ETH_BTC-5m.csv); pass symbol="
        )
    return f"{m.group(1).upper()}/{m.group(2).upper()}"


def _normalise_symbol(symbol: str) -> str:
    s = symbol.strip().upper().replace("_", "/").replace("-", "/")
    parts = s.split("/")
    if len(parts) != 2 or not all(parts):
        raise DataError(f"symbol {symbol!r} must be BASE/QUOTE, e.g. ETH/BTC")
    return s


def _epoch_to_ns(value: Decimal) -> int:
    """Epoch number -> ns; unit by magnitude (s < 1e11 <= ms < 1e14 <= us < 1e17 <= ns)."""
    mag = abs(value)
    if mag < 10**11:
        scale = _NS_PER_S
    elif mag < 10**14:
        scale = 1_000_000
    elif mag < 10**17:
        scale = 1_000
    else:
        scale = 1
    return int((value * scale).to_integral_value())


def parse_timestamp(text: str) -> int:
    """Parse one timestamp cell to ns since the Unix epoch (UTC).

    Parameters
    ----------
    text : str
        ISO 8601 date-time (``Z``, an offset, or naive meaning UTC; fractional seconds
        up to ns), a date only (midnight UTC), or an epoch number.  An epoch's unit is
        inferred from its magnitude ``|v|``: seconds below 1e11 (year 5138), else
        milliseconds below 1e14, else microseconds below 1e17, else nanoseconds.  (So
        epoch milliseconds before March 1973 would be misread as seconds.)

    Returns
    -------
    int
        ns since 1970-01-01T00:00:00Z; ValueError if not a recognisable timestamp.
    """
    s = text.strip()
    if not s:
        raise ValueError("empty timestamp")
    if _NUMBER.match(s):
        try:
            return _epoch_to_ns(Decimal(s))
        except InvalidOperation:
            raise ValueError(f"{text!r} is not a valid timestamp") from None
    if _LONG_FRACTION.search(s) is None:
        try:
            dt = datetime.fromisoformat(s)
        except ValueError:
            raise ValueError(f"{text!r} is not a valid timestamp") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        delta = dt - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * _NS_PER_S + delta.microseconds * 1_000
    try:  # sub-microsecond fractions: pandas keeps the nanoseconds
        ts = pd.Timestamp(s)
    except (ValueError, TypeError):
        raise ValueError(f"{text!r} is not a valid timestamp") from None
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value)


def _parse_float(text: str) -> float:
    s = text.strip()
    if not s:
        raise ValueError("empty value")
    try:
        v = float(s)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if math.isnan(v):
        raise ValueError(f"{text!r}: NaN is not allowed")
    if not math.isfinite(v):
        raise ValueError(f"{text!r} is not finite")
    return v


def _fmt_time(ns: int) -> str:
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()


# ------------------------------------------------------------------ loading
def load_candles(path: Path | str, symbol: str | None = None) -> Candles:
    """Load and validate one OHLCV CSV file.

    Parameters
    ----------
    path : pathlib.Path or str
        The CSV file (format in the module docstring).
    symbol : str, optional
        ``BASE/QUOTE``; by default taken from the file name (``ETH_BTC-5m.csv`` ->
        ``"ETH/BTC"``).

    Returns
    -------
    Candles
        ``n`` bars, time ascending; arrays are read-only.

    Raises
    ------
    DataError
        Missing/empty file, missing column, bad cell (not a number, NaN, infinite,
        bad timestamp), price <= 0, volume < 0, high/low inconsistent with open/close,
        duplicate or decreasing time; naming the file, line (header = 1) and column.
    """
    path = Path(path)
    sym = _normalise_symbol(symbol) if symbol is not None else symbol_from_filename(path)
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror or exc})") from None
    with fh:
        reader = csv.reader(fh)
        header: list[str] | None = None
        for row in reader:
            if any(cell.strip() for cell in row):
                header = [cell.strip().lower() for cell in row]
                break
        if header is None:
            raise DataError(f"{path}: empty file (expected a header {','.join(COLUMNS)})")
        header_line = reader.line_num
        idx = _column_indices(path, header, header_line)
        cells: dict[str, list[str | None]] = {c: [] for c in COLUMNS}
        lines: list[int] = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            for col, j in idx.items():
                cells[col].append(row[j] if j < len(row) else None)
            lines.append(reader.line_num)
    if not lines:
        raise DataError(f"{path}: no data rows after the header (line {header_line})")
    t, arrays = _parse_columns(path, cells, lines)
    _validate(path, t, arrays, np.asarray(lines))
    for a in (t, *arrays.values()):
        a.setflags(write=False)
    return Candles(
        sym, t, arrays["open"], arrays["high"], arrays["low"], arrays["close"], arrays["volume"]
    )


def _parse_columns(
    path: Path, cells: dict[str, list[str | None]], lines: list[int]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Parse the raw cells; raise :class:`DataError` for the earliest bad one."""
    first_bad: tuple[int, int, str, str] | None = None  # (row, column number, column, msg)

    def fail(i: int, k: int, col: str, cell: str | None, exc: ValueError | None) -> None:
        nonlocal first_bad
        msg = "missing value" if cell is None else str(exc)
        if first_bad is None or (i, k) < first_bad[:2]:
            first_bad = (i, k, col, msg)

    times = np.zeros(len(lines), dtype=np.int64)
    for i, cell in enumerate(cells["timestamp"]):
        try:
            times[i] = parse_timestamp(cell if cell is not None else "")
        except ValueError as exc:
            fail(i, 0, "timestamp", cell, exc)
            break
    arrays: dict[str, np.ndarray] = {}
    for k, col in enumerate(COLUMNS[1:], start=1):
        raw = cells[col]
        try:  # fast path: numpy parses the whole column
            arr = np.array(raw, dtype=np.float64)
            ok = bool(np.isfinite(arr).all())
        except (TypeError, ValueError):
            arr, ok = np.zeros(len(raw)), False
        if not ok:  # slow path: find the first bad cell
            for i, cell in enumerate(raw):
                try:
                    arr[i] = _parse_float(cell if cell is not None else "")
                except ValueError as exc:
                    fail(i, k, col, cell, exc)
                    break
        arrays[col] = arr
    if first_bad is not None:
        i, _, col, msg = first_bad
        raise DataError(f"{path} line {lines[i]}, column {col!r}: {msg}")
    return times, arrays


def _column_indices(path: Path, header: list[str], line: int) -> dict[str, int]:
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise DataError(f"{path} line {line}: missing column(s) {names} (header has {header})")
    for c in COLUMNS:
        if header.count(c) > 1:
            raise DataError(f"{path} line {line}, column {c!r}: appears more than once")
    return {c: header.index(c) for c in COLUMNS}


def _validate(path: Path, t: np.ndarray, a: dict[str, np.ndarray], lines: np.ndarray) -> None:
    """Raise :class:`DataError` for the earliest row breaking an OHLCV invariant."""
    o, h, lo, c, v = a["open"], a["high"], a["low"], a["close"], a["volume"]
    checks: list[tuple[np.ndarray, str, str]] = [
        *((a[col] <= 0, col, "non-positive price") for col in _PRICE_COLS),
        (v < 0, "volume", "negative volume"),
        (h < lo, "high", "high below low"),
        (h < np.maximum(o, c), "high", "high below max(open, close)"),
        (lo > np.minimum(o, c), "low", "low above min(open, close)"),
    ]
    checks.append((np.r_[False, np.diff(t) <= 0], "timestamp", "time"))
    best: tuple[int, int] | None = None  # (row, check number)
    for k, (mask, _, _) in enumerate(checks):
        bad = np.flatnonzero(mask)
        if bad.size and (best is None or bad[0] < best[0]):
            best = (int(bad[0]), k)
    if best is None:
        return
    i, k = best
    _, col, what = checks[k]
    if col == "timestamp":
        prev = f"line {lines[i - 1]}, {_fmt_time(int(t[i - 1]))}"
        if t[i] == t[i - 1]:
            msg = f"duplicate timestamp {_fmt_time(int(t[i]))} (same as {prev})"
        else:
            msg = (
                f"timestamp {_fmt_time(int(t[i]))} is not after the previous row's "
                f"({prev}); rows must be sorted by time ascending"
            )
    elif k < 5:  # non-positive price, negative volume
        msg = f"{what} {float(a[col][i])!r}"
    else:
        msg = f"{what} (" + ", ".join(f"{n}={float(a[n][i])!r}" for n in _PRICE_COLS) + ")"
    raise DataError(f"{path} line {lines[i]}, column {col!r}: {msg}")


def symbol_file(dir: Path | str, symbol: str, timeframe: str = "5m") -> Path:
    """The file :func:`load_dir` reads for ``symbol``: ``ETH/BTC`` ->
    ``<dir>/ETH_BTC-<timeframe>.csv`` (whether it exists or not).

    Raises
    ------
    DataError
        ``symbol`` is not ``BASE/QUOTE``.
    """
    base, quote = _normalise_symbol(symbol).split("/")
    return Path(dir) / f"{base}_{quote}-{timeframe}.csv"


def load_dir(
    dir: Path | str, symbols: list[str] | None = None, timeframe: str = "5m"
) -> dict[str, Candles]:
    """Load every ``BASE_QUOTE-<timeframe>.csv`` in a directory.

    Parameters
    ----------
    dir : pathlib.Path or str
        Directory holding the files.
    symbols : list of str, optional
        ``BASE/QUOTE`` symbols to load; each must have its file
        (``ETH/BTC`` -> ``ETH_BTC-<timeframe>.csv``).  ``None`` loads all files of
        the timeframe.
    timeframe : str
        The file-name suffix, e.g. ``"5m"``.

    Returns
    -------
    dict of str to Candles
        Keyed by ``BASE/QUOTE``; in the order of ``symbols``, else sorted by symbol.
        DataError if the directory does not exist, an expected file is missing (the
        message names it), no file matches, or a file is invalid.
    """
    d = Path(dir)
    if not d.is_dir():
        raise DataError(f"{d}: not a directory")
    if symbols is None:
        files = [f for f in d.glob(f"*_*-{timeframe}.csv") if _FILE_RE.match(f.stem)]
        if not files:
            raise DataError(f"{d}: no BASE_QUOTE-{timeframe}.csv files")
        loaded = [load_candles(f) for f in files]
        return {c.symbol: c for c in sorted(loaded, key=lambda c: c.symbol)}
    out = {}
    for s in symbols:
        sym = _normalise_symbol(s)
        f = symbol_file(d, sym, timeframe)
        if not f.is_file():
            raise DataError(f"no data for {sym}: expected file {f}")
        out[sym] = load_candles(f, sym)
    return out
