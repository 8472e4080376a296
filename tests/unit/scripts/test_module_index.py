"""docs/architecture.md names every module with its job, generated from the docstrings
(scripts/module_index.py): a module added, renamed or re-described without regenerating
the index fails here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def load():  # noqa: ANN201 - the script as a module
    spec = importlib.util.spec_from_file_location("module_index",
                                                  ROOT / "scripts" / "module_index.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_module_index_in_the_architecture_doc_is_current() -> None:
    mi = load()
    assert mi.current() == mi.render(), "run: .venv/bin/python scripts/module_index.py"


def test_every_module_has_a_docstring_and_every_package_is_listed() -> None:
    mi = load()
    listed = dict(mi.modules())
    assert [m for m, job in listed.items() if job == "(no docstring)"] == []
    for name in ("backend.venues.live_state", "agents.execution", "orchestrator.supervisor",
                 "dashboard.app"):
        assert name in listed


def test_first_sentence() -> None:
    mi = load()
    assert mi.first_sentence("One job.  More text.\n\nDetails.") == "One job."
    assert mi.first_sentence("Sizes orders, e.g. by VaR. Then more.") == (
        "Sizes orders, e.g. by VaR.")
