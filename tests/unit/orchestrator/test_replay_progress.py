"""``tradingmesh run``'s progress line says how far, how fast and how long to go (issue 20,
item 6: it printed a bare count every 2 s)."""

from orchestrator.replay_progress import PRINT_EVERY_S, progress_line


def test_the_line_has_the_total_share_rate_and_eta():
    line = progress_line(4_600, 22_998, 27.0)
    assert "4,600 / 22,998 (20%)" in line
    assert "170 bars/s" in line
    assert "ETA 1m48s" in line  # (22,998 - 4,600) / 170.4 bars/s = 108 s
    assert line.endswith("(27s)")


def test_short_eta_unknown_total_and_the_end():
    assert "ETA 5s" in progress_line(900, 1_000, 45.0)  # 20 bars/s, 100 to go
    unknown = progress_line(500, None, 10.0)
    assert " / " not in unknown and "ETA" not in unknown and "50 bars/s" in unknown
    done = progress_line(1_000, 1_000, 50.0)
    assert "(100%)" in done and "ETA" not in done
    assert "0 bars/s" in progress_line(0, 1_000, 0.0)


def test_a_line_every_ten_seconds_at_most():
    assert PRINT_EVERY_S >= 10  # a replay of the sample data prints about a dozen lines
