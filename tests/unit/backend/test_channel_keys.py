"""Every Redis key family is named in ``backend/channels.py`` (issue 16): a key literal
anywhere else is a second spelling that can drift (the ACL, the books checks and the
drills read the same keys as the agents that write them)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
#: Key families of the mesh's Redis (stream names and message sources are not keys).
KEY_LITERAL = re.compile(
    r"""f?["'](?:mesh:|agent:(?:seen|state|lease|decisions|health):|stats:|venue:paper:|"""
    r"""venue:live:|execution:portfolio|market_data:(?:cursor|epoch|done)|optimizer:"""
    r"""(?:schedule|applied))""")


def stray_key_literals() -> list[str]:
    out = []
    for pkg in ("backend", "agents", "orchestrator", "dashboard"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if path == ROOT / "backend" / "channels.py":
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if KEY_LITERAL.search(code):
                    out.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    return out


def test_redis_keys_are_spelled_only_in_channels() -> None:
    assert stray_key_literals() == []


def test_the_check_sees_a_stray_key() -> None:
    assert KEY_LITERAL.search('pipe.hincrby("stats:messages", ch, 1)')
    assert KEY_LITERAL.search('base = f"venue:live:{name}"')
    assert not KEY_LITERAL.search('source = f"venue:{venue}"')  # a message source
