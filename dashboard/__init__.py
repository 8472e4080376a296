"""The Streamlit dashboard: reads the control plane's REST API only (``backend.rest``).

``app`` is the Streamlit entry, ``client`` the REST client, ``views/`` the pages.  Nothing
is imported here.
"""

__all__ = [
    "app",
    "charts",
    "client",
    "common",
    "history",
    "views",
]
