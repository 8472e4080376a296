"""Tests for backend.marketdata.candles: CSV loading, validation errors, replay order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.marketdata.candles import (
    Candles,
    DataError,
    load_candles,
    load_dir,
    parse_timestamp,
    symbol_from_filename,
)
from backend.marketdata.replay_order import merge_bars

SAMPLE = Path(__file__).resolve().parents[4] / "data" / "sample"
HEADER = "timestamp,open,high,low,close,volume\n"
T0 = 1515560100 * 10**9  # 2018-01-10T04:55:00Z


def write(tmp_path: Path, text: str, name: str = "ETH_BTC-5m.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def rows(n: int = 3) -> str:
    """``n`` valid rows starting at 04:55 UTC, 5 minutes apart."""
    out = []
    for i in range(n):
        ts = pd.Timestamp(T0 + i * 300 * 10**9, unit="ns", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append(f"{ts},1.0,1.2,0.9,1.1,10\n")
    return "".join(out)


# ------------------------------------------------------------------ sample data
def test_sample_files_load():
    eth = load_candles(SAMPLE / "ETH_BTC-5m.csv")
    assert eth.symbol == "ETH/BTC"
    assert len(eth) == 5760
    assert eth.time.dtype == np.int64 and eth.close.dtype == np.float64
    assert eth.time[0] == T0
    assert eth.close[0] == pytest.approx(0.0994766)
    assert np.all(np.diff(eth.time) > 0)
    assert not eth.close.flags.writeable
    ada = load_candles(SAMPLE / "ADA_BTC-5m.csv")
    assert len(ada) == 5720
    assert np.all(np.diff(ada.time) > 0)


def test_to_frame_and_slice():
    eth = load_candles(SAMPLE / "ETH_BTC-5m.csv")
    df = eth.to_frame()
    assert list(df.columns) == ["open", "high", "low", "close", "volume"]
    assert len(df) == 5760
    assert str(df.index.tz) == "UTC"
    assert df.index[0] == pd.Timestamp("2018-01-10T04:55:00Z")
    assert np.array_equal(df.index.asi8, eth.time)
    head = eth.slice(0, 10)
    assert isinstance(head, Candles) and len(head) == 10 and head.symbol == "ETH/BTC"


def test_load_dir_all_and_selected():
    all_ = load_dir(SAMPLE)
    assert list(all_) == ["ADA/BTC", "DASH/BTC", "ETH/BTC", "LTC/BTC"]
    sel = load_dir(SAMPLE, ["LTC/BTC", "ETH/BTC"])
    assert list(sel) == ["LTC/BTC", "ETH/BTC"]
    assert len(sel["LTC/BTC"]) == 5760


def test_load_dir_missing_symbol_names_expected_file():
    with pytest.raises(DataError, match=r"XRP_BTC-5m\.csv"):
        load_dir(SAMPLE, ["ETH/BTC", "XRP/BTC"])
    with pytest.raises(DataError, match=r"ETH_BTC-1h\.csv"):
        load_dir(SAMPLE, ["ETH/BTC"], timeframe="1h")
    with pytest.raises(DataError, match="no BASE_QUOTE-1h.csv"):
        load_dir(SAMPLE, None, timeframe="1h")
    with pytest.raises(DataError, match="not a directory"):
        load_dir(SAMPLE / "nope")


def test_merge_bars_global_order():
    data = load_dir(SAMPLE)
    order = merge_bars(data)
    assert len(order) == sum(len(c) for c in data.values())
    keys = [(t, s) for t, s, _ in order]
    assert keys == sorted(keys)
    assert order[:4] == [
        (T0, "ADA/BTC", 0),
        (T0, "DASH/BTC", 0),
        (T0, "ETH/BTC", 0),
        (T0, "LTC/BTC", 0),
    ]
    for sym, c in data.items():
        idx = [r for _, s, r in order if s == sym]
        assert idx == list(range(len(c)))
    for t, s, r in order[::997]:
        assert data[s].time[r] == t


def test_merge_bars_with_gaps(tmp_path):
    a = write(tmp_path, HEADER + "0,1,1,1,1,1\n600,1,1,1,1,1\n", "AAA_BTC-5m.csv")
    b = write(tmp_path, HEADER + "300,1,1,1,1,1\n600,1,1,1,1,1\n900,1,1,1,1,1\n", "BBB_BTC-5m.csv")
    order = merge_bars([load_candles(b), load_candles(a)])
    s = 10**9
    assert order == [
        (0, "AAA/BTC", 0),
        (300 * s, "BBB/BTC", 0),
        (600 * s, "AAA/BTC", 1),
        (600 * s, "BBB/BTC", 1),
        (900 * s, "BBB/BTC", 2),
    ]
    assert merge_bars({}) == []


# ------------------------------------------------------------------ formats
@pytest.mark.parametrize(
    "text",
    [
        "2018-01-10T04:55:00Z",
        "2018-01-10T04:55:00+00:00",
        "2018-01-10T06:55:00+02:00",
        "2018-01-10 04:55:00",
        "2018-01-10T04:55:00.000Z",
        "1515560100",
        "1515560100.0",
        "1515560100000",
        "1515560100000000",
        "1515560100000000000",
    ],
)
def test_timestamp_formats(text):
    assert parse_timestamp(text) == T0


def test_timestamp_date_only_and_fractions():
    assert parse_timestamp("2018-01-10") == 1515542400 * 10**9
    assert parse_timestamp("2018-01-10T04:55:00.123456789Z") == T0 + 123456789
    assert parse_timestamp("1515560100.5") == T0 + 500_000_000
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")


def test_header_case_order_and_extra_columns(tmp_path):
    p = write(
        tmp_path,
        "Volume,CLOSE,extra,Low,High,Open,TimeStamp\n"
        "10,1.1,x,0.9,1.2,1.0,1515560100000\n"
        "\n"
        "20,1.15,y,1.0,1.3,1.1,1515560400000\n",
    )
    c = load_candles(p)
    assert len(c) == 2
    assert c.time.tolist() == [T0, T0 + 300 * 10**9]
    assert c.open.tolist() == [1.0, 1.1] and c.volume.tolist() == [10.0, 20.0]


def test_symbol_from_file_name_and_argument(tmp_path):
    assert symbol_from_filename("data/ETH_BTC-5m.csv") == "ETH/BTC"
    assert symbol_from_filename("ada_btc.csv") == "ADA/BTC"
    p = write(tmp_path, HEADER + rows(2), "ETHBTC.csv")
    with pytest.raises(DataError, match="symbol"):
        load_candles(p)
    assert load_candles(p, "ETH/BTC").symbol == "ETH/BTC"
    assert load_candles(p, "eth_btc").symbol == "ETH/BTC"


def test_gaps_are_allowed(tmp_path):
    p = write(tmp_path, HEADER + "0,1,1,1,1,1\n300,1,1,1,1,1\n3600,1,1,1,1,0\n")
    assert load_candles(p).time.tolist() == [0, 300 * 10**9, 3600 * 10**9]


# ------------------------------------------------------------------ errors
GOOD = "2018-01-10T04:55:00Z,1.0,1.2,0.9,1.1,10\n"
GOOD2 = "2018-01-10T05:00:00Z,1.0,1.2,0.9,1.1,10\n"


@pytest.mark.parametrize(
    ("bad_row", "column", "fragment"),
    [
        ("2018-01-10T05:00:00Z,1.0,abc,0.9,1.1,10", "high", "'abc' is not a number"),
        ("2018-01-10T05:00:00Z,1.0,1.2,0.9,,10", "close", "empty value"),
        ("2018-01-10T05:00:00Z,1.0,1.2,0.9,NaN,10", "close", "NaN"),
        ("2018-01-10T05:00:00Z,1.0,1.2,0.9,1.1,inf", "volume", "not finite"),
        ("2018-01-10T05:00:00Z,1.0,1.2,0.9,1.1", "volume", "missing value"),
        ("not-a-time,1.0,1.2,0.9,1.1,10", "timestamp", "not a valid timestamp"),
        ("2018-01-10T05:00:00Z,1.0,0.8,0.9,0.85,10", "high", "high below low"),
        ("2018-01-10T05:00:00Z,1.0,1.05,0.9,1.1,10", "high", "high below max(open, close)"),
        ("2018-01-10T05:00:00Z,1.0,1.2,1.05,1.1,10", "low", "low above min(open, close)"),
        ("2018-01-10T05:00:00Z,0,1.2,0.9,1.1,10", "open", "non-positive price"),
        ("2018-01-10T05:00:00Z,1.0,1.2,-0.9,1.1,10", "low", "non-positive price"),
        ("2018-01-10T05:00:00Z,1.0,1.2,0.9,1.1,-1", "volume", "negative volume"),
        ("2018-01-10T04:58:00Z,1.0,1.2,0.9,1.1,10", "timestamp", "duplicate timestamp"),
        ("2018-01-10T04:50:00Z,1.0,1.2,0.9,1.1,10", "timestamp", "sorted by time"),
    ],
)
def test_bad_cell_names_file_line_and_column(tmp_path, bad_row, column, fragment):
    # header = line 1, good rows on lines 2-3, the bad row on line 4, then a good one
    later = "2018-01-10T05:30:00Z,1.0,1.2,0.9,1.1,10\n"
    p = write(tmp_path, HEADER + GOOD + GOOD2.replace("05:00", "04:58") + bad_row + "\n" + later)
    with pytest.raises(DataError) as err:
        load_candles(p)
    msg = str(err.value)
    assert msg.startswith(f"{p} line 4, column '{column}': "), msg
    assert fragment in msg, msg
    if column == "timestamp" and "valid" not in fragment:
        assert "(line 3," in msg or "same as line 3" in msg  # names the previous row


def test_duplicate_names_previous_line(tmp_path):
    p = write(tmp_path, HEADER + GOOD + GOOD2 + GOOD2)
    with pytest.raises(DataError, match=r"line 4, column 'timestamp': duplicate .*line 3"):
        load_candles(p)


def test_error_line_counts_blank_lines(tmp_path):
    p = write(tmp_path, HEADER + GOOD + "\n\n" + GOOD2.replace("1.2", "x"))
    with pytest.raises(DataError, match=r"line 5, column 'high': 'x' is not a number"):
        load_candles(p)


def test_earliest_bad_line_reported(tmp_path):
    body = (
        GOOD
        + "2018-01-10T05:00:00Z,1.0,1.2,0.9,1.1,-5\n"
        + "2018-01-10T05:05:00Z,1.0,0.5,0.9,1.1,10\n"
    )
    p = write(tmp_path, HEADER + body)
    with pytest.raises(DataError, match=r"line 3, column 'volume'"):
        load_candles(p)


def test_empty_file(tmp_path):
    with pytest.raises(DataError, match="empty file"):
        load_candles(write(tmp_path, ""))
    with pytest.raises(DataError, match="no data rows"):
        load_candles(write(tmp_path, HEADER))


def test_missing_columns_are_named(tmp_path):
    p = write(tmp_path, "timestamp,open,low,close\n" + "0,1,1,1\n")
    with pytest.raises(DataError) as err:
        load_candles(p)
    msg = str(err.value)
    assert "line 1: missing column(s) 'high', 'volume' (" in msg


def test_duplicate_column(tmp_path):
    p = write(tmp_path, "timestamp,open,high,low,close,volume,Close\n")
    with pytest.raises(DataError, match=r"line 1, column 'close': appears more than once"):
        load_candles(p)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot open"):
        load_candles(tmp_path / "NOPE_BTC-5m.csv")
