"""``python -m orchestrator.cli``: run the ``tradingmesh`` command line."""

import sys

from orchestrator.cli.main import app

sys.exit(app())
