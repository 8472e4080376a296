"""What a fresh interpreter imports: for the fast-start tests (issue 17).

Import as ``from tests.support.imports import modules_after``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def modules_after(code: str) -> set[str]:
    """The names in ``sys.modules`` after a fresh interpreter ran ``code`` (repo root as
    the working directory); raises ``CalledProcessError`` if the code failed."""
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
        cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.split())
