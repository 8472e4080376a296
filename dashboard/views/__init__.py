"""The dashboard pages (Streamlit page scripts run by ``st.navigation``; not imported)."""

__all__ = [
    "agents",
    "channels",
    "optimizer",
    "pipeline",
    "risk",
    "trading",
]
