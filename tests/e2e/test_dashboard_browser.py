"""End to end in a real browser: ``tradingmesh up`` serves the dashboard, headless Chromium
operates it.

``tradingmesh up`` runs on a private redis-server with a slowed replay, a token, and free
ports for the API and the dashboard.  Debian's Chromium (``/usr/bin/chromium``, driven by
Playwright; no browser is ever downloaded) opens the dashboard and:

1. waits until the Agents page shows every agent as ``running``;
2. presses Restart on a strategy agent and sees its restart count go up (the API agrees);
3. presses Stop on another strategy agent, sees it ``stopped``, presses Start, sees it
   ``running`` again;
4. once trades have happened, takes a screenshot of every page: into ``docs/img/`` when
   ``TM_UPDATE_SCREENSHOTS=1`` (the committed pictures of the README), else into the
   test's temporary directory.

Without ``/usr/bin/chromium`` or the ``playwright`` package the test skips with the
reason, except under CI (``CI=true``), where that is a failure (``scripts/test.sh``
installs chromium with apt).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from backend.redisctl.server import RedisServer, free_port
from tests.support.helpers import eventually

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "e2e-dashboard-token-0123456789"
PAGES = [  # (url path, title, something the page shows once its data is in)
    ("", "Agents", "Agents running"),
    ("trading", "Trading", "Recent fills"),
    ("pipeline", "Pipeline", "compliance approved"),
    ("risk", "Risk", "Daily drawdown"),
    ("optimizer", "Optimizer", "No optimizer runs yet"),
    ("channels", "Channels", "Streams and consumer groups"),
]


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> None:
    if _under_ci():
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser_ready() -> None:
    """Chromium and Playwright are there (skip, or fail under CI, if not)."""
    if not CHROMIUM.is_file():
        _unavailable(f"{CHROMIUM} is missing: browser tests need Debian's chromium "
                     "(`apt-get install chromium`, or run scripts/test.sh, which installs it)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    if shutil.which("redis-server") is None:
        _unavailable("redis-server is not on PATH (scripts/test.sh installs it)")


@pytest.fixture(scope="module")
def redis_for_dashboard(browser_ready: None,
                        tmp_path_factory: pytest.TempPathFactory) -> RedisServer:
    server = RedisServer(tmp_path_factory.mktemp("dash-redis"), die_with_parent=True).start()
    yield server
    server.stop()


def _env(var: Path, redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    for k in ("DATABASE_URL", "TRADINGMESH_SETTINGS_FILE", "TRADINGMESH_FAILPOINTS",
              "TRADINGMESH_REDIS_URL", "TRADINGMESH_API_URL"):
        env.pop(k, None)
    env.update({
        "TRADINGMESH_VAR_DIR": str(var), "REDIS_URL": redis_url,
        "TRADINGMESH_API_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1",
        # trade often, so the Trading page has fills and an equity curve to show
        "TRADINGMESH_RISK__MIN_CONFIDENCE": "0",
    })
    return env


def _get(url: str, token: str | None = TOKEN) -> tuple[int, bytes]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - loopback
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _json(url: str) -> Any:
    import json

    status, body = _get(url)
    assert status == 200, (url, status, body[:300])
    return json.loads(body)


def _slug(agent_id: str) -> str:
    from dashboard.common import slug

    return slug(agent_id)


def _settled(page: Any) -> None:
    """Wait until the page has refreshed itself twice (the status line's clock moved
    twice): its fragments have run with data and the data grids have drawn."""
    from playwright.sync_api import expect

    status = page.locator(".st-key-status_bar")
    expect(status).to_contain_text("updated", timeout=30_000)
    for _ in range(2):
        expect(status).not_to_have_text(status.inner_text(), timeout=30_000)


def _shot(page: Any, path: Path) -> None:
    """Screenshot of the whole page (Streamlit scrolls inside its main element, so the
    viewport is grown to the content's height first)."""
    height = page.evaluate(
        "Math.max(...[...document.querySelectorAll('[data-testid=stMain], "
        "[data-testid=stMainBlockContainer]')].map(e => e.scrollHeight))")
    page.set_viewport_size({"width": 1440, "height": int(min(max(height + 40, 900), 4000))})
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1440, "height": 900})


def test_dashboard_operates_the_mesh_in_chromium(
    redis_for_dashboard: RedisServer, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    var = tmp_path / "var"
    api_port, dash_port = free_port(), free_port()
    api, dash = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{dash_port}"
    log = tmp_path / "up.log"
    up = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "up", "--speed", "1000",
         "--api-port", str(api_port), "--dashboard-port", str(dash_port)],
        cwd=ROOT, env=_env(var, redis_for_dashboard.url), stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    update = os.environ.get("TM_UPDATE_SCREENSHOTS") == "1"
    shots = ROOT / "docs" / "img" if update else tmp_path / "img"
    shots.mkdir(parents=True, exist_ok=True)

    def alive() -> None:
        assert up.poll() is None, log.read_text()[-3000:]

    try:
        def api_ready() -> bool:
            alive()
            return _get(f"{api}/api/ready")[0] == 200
        eventually(api_ready, timeout=120, interval=0.2, message="mesh API ready")
        agents = [a["agent_id"] for a in _json(f"{api}/api/agents")["agents"]]
        assert {"strategy:ETHBTC", "strategy:LTCBTC", "execution"} <= set(agents)

        def dashboard_up() -> bool:
            alive()
            return _get(f"{dash}/_stcore/health", token=None) == (200, b"ok")
        eventually(dashboard_up, timeout=90, interval=0.2, message="dashboard serving")
        cmdline = Path(f"/proc/{up.pid}/cmdline").read_bytes()
        assert TOKEN.encode() not in cmdline

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM),
                                         args=["--no-sandbox", "--headless"])
            try:
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                page.goto(dash + "/")
                expect(page.get_by_role("heading", name="Agents")).to_be_visible(
                    timeout=60_000)

                # 1. every agent running
                for agent_id in agents:
                    expect(page.locator(f".st-key-state_{_slug(agent_id)}")).to_have_text(
                        "running", timeout=60_000)
                expect(page.get_by_text("API connected")).to_be_visible()

                # 2. restart a strategy agent: its restart count goes up
                eth = _slug("strategy:ETHBTC")
                restarts = page.locator(f".st-key-restarts_{eth}")
                before = int(restarts.inner_text().strip())
                page.locator(f".st-key-restart_{eth} button").click()
                expect(restarts).to_have_text(str(before + 1), timeout=30_000)
                assert _json(f"{api}/api/agents/strategy:ETHBTC")["restarts"] == before + 1
                expect(page.locator(f".st-key-state_{eth}")).to_have_text(
                    "running", timeout=60_000)

                # 3. stop another one: stopped until started again
                ltc = _slug("strategy:LTCBTC")
                page.locator(f".st-key-stop_{ltc} button").click()
                expect(page.locator(f".st-key-state_{ltc}")).to_have_text(
                    "stopped", timeout=30_000)
                assert _json(f"{api}/api/agents/strategy:LTCBTC")["desired"] == "stopped"
                page.locator(f".st-key-start_{ltc} button").click()
                expect(page.locator(f".st-key-state_{ltc}")).to_have_text(
                    "running", timeout=60_000)

                # 4. screenshots, once there is trading to show
                eventually(lambda: alive() or len(_json(f"{api}/api/fills?limit=10")) >= 4,
                           timeout=240, interval=0.5, message="a few fills during the replay")
                for path, title, marker in PAGES:
                    page.goto(f"{dash}/{path}")
                    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible(
                        timeout=30_000)
                    expect(page.get_by_text(marker).first).to_be_visible(timeout=30_000)
                    _settled(page)
                    if path == "":  # rates need two samples
                        expect(page.locator(".st-key-rates_market_data")).to_have_text(
                            re.compile(r"\d"), timeout=30_000)
                    if path in ("trading", "channels"):  # charts drawn
                        expect(page.locator("[data-testid=stVegaLiteChart]").first
                               ).to_be_visible(timeout=30_000)
                        expect(page.get_by_text("Collecting samples")).to_have_count(0)
                    expect(page.get_by_text("API unreachable")).to_have_count(0)
                    _shot(page, shots / f"dashboard-{title.lower()}.png")
            finally:
                browser.close()
        for _, title, _ in PAGES:
            assert (shots / f"dashboard-{title.lower()}.png").stat().st_size > 10_000
    finally:
        up.send_signal(signal.SIGINT)
        try:
            code = up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
            raise AssertionError("orchestrator did not stop:\n" + log.read_text()[-3000:]) \
                from None
    assert code == 0, log.read_text()[-3000:]
    assert not (var / "dashboard_url").exists()  # the dashboard stopped with the mesh
