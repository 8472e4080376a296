"""The Streamlit dashboard: reads the control plane's REST API only (``backend.rest.models``)."""
