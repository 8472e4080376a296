"""The tradingmesh dashboard (Streamlit entry point).

Run by ``tradingmesh up`` (http://127.0.0.1:8502), or by hand::

    TRADINGMESH_API_URL=http://127.0.0.1:8000 TRADINGMESH_API_TOKEN=... \\
        streamlit run dashboard/app.py --server.port 8502

Everything it shows comes from the orchestrator's REST API (see ``docs/api.md``) through
:mod:`dashboard.client`; the pages are the scripts in ``dashboard/views/``.  Each page
refreshes its live part every 1-2 s in a Streamlit fragment (no full-page reload, no
flicker) and keeps showing the last data, marked stale, when the API is down.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # `streamlit run dashboard/app.py` from an uninstalled checkout
    sys.path.insert(0, str(_ROOT))

import streamlit as st  # noqa: E402

from dashboard.client import ApiAuthError  # noqa: E402
from dashboard.common import Loader, fmt_clock, get_client, refresh_s  # noqa: E402

VIEWS = Path(__file__).resolve().parent / "views"
PAGES = [
    # (file, title, icon, url path)
    ("agents.py", "Agents", ":material/smart_toy:", "agents"),
    ("trading.py", "Trading", ":material/candlestick_chart:", "trading"),
    ("pipeline.py", "Pipeline", ":material/filter_alt:", "pipeline"),
    ("risk.py", "Risk", ":material/shield:", "risk"),
    ("optimizer.py", "Optimizer", ":material/tune:", "optimizer"),
    ("channels.py", "Channels", ":material/hub:", "channels"),
]


@st.fragment(run_every=refresh_s())
def status_bar() -> None:
    """One line on every page: API reachable, agents running, halt latch, last refresh."""
    loader = Loader()
    ready = loader.get("status_ready", lambda c: c.ready())
    breaker = loader.get("status_breaker", lambda c: c.breaker())
    parts = []
    if loader.down is not None:
        refused = isinstance(loader.down, ApiAuthError)
        parts.append(f":red[**● API {'refused the token' if refused else 'unreachable'}**]")
    else:
        parts.append(":green[**● API connected**]")
    if ready.value is not None:
        r = ready.value
        ok = r.agents_running == r.agents_expected and not ready.stale
        parts.append(f"agents running :{'green' if ok else 'red'}[**{r.agents_running}/"
                     f"{r.agents_expected}**]")
    if breaker.value is not None:
        parts.append(":red[**TRADING HALTED**]" if breaker.value.halted
                     else ":green[**trading active**]")
    parts.append(f":gray[{get_client().base_url} · updated {fmt_clock(time.time())}]")
    with st.container(key="status_bar"):
        st.markdown(" &nbsp;·&nbsp; ".join(parts))


def main() -> None:
    """Page config, navigation (top bar), status line, the selected page."""
    st.set_page_config(page_title="tradingmesh", page_icon="📈", layout="wide")
    nav = st.navigation([
        st.Page(VIEWS / file, title=title, icon=icon, url_path=path, default=i == 0)
        for i, (file, title, icon, path) in enumerate(PAGES)
    ], position="top")
    status_bar()
    nav.run()


main()
