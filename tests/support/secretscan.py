"""Find sentinel secrets in files, bytes, a SQLite database and a Redis server.

Test-only code for ``tests/e2e/test_secret_leaks.py``.  A :class:`Sentinels` set holds
the secret values a test run was given (API keys, token, Redis passwords); every scanner
looks for each value in every *form* it could be written in:

* ``raw``: the value itself;
* ``url``: percent-encoded (``quote(v, safe="")``, as in a ``redis://:pw@host`` URL) and
  form-encoded (``quote_plus``);
* ``base64``: standard and URL-safe base64 of the UTF-8 bytes, at any alignment inside
  a longer base64 text;
* ``json``: the value as a JSON string body (escapes ``"``, ``\\``, ``/`` is left alone).

A scan returns :class:`Hit` records (where, which secret, which form, a short context
with the secret itself masked, so a failing assertion does not print the secret).
"""

from __future__ import annotations

import base64
import json
import sqlite3
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = [
    "Hit",
    "Sentinels",
    "forms",
    "private_mode",
    "redis_items",
    "scan_bytes",
    "scan_redis",
    "scan_sqlite",
    "scan_tree",
]

_CONTEXT = 40  # bytes of context either side of a hit


def _base64_forms(raw: bytes) -> dict[str, bytes]:
    """The characters of base64(``raw``) that do not depend on what surrounds it, for each
    of the three alignments ``raw`` can have inside a longer base64 text (e.g. the
    ``user:password`` of HTTP Basic auth), standard and URL-safe alphabets."""
    out: dict[str, bytes] = {}
    for k, start in ((0, 0), (1, 2), (2, 3)):
        enc = base64.b64encode(b"\0" * k + raw)
        middle = enc[start: 4 * ((len(raw) + k) // 3)]
        out[f"base64+{k}"] = middle
        out[f"base64url+{k}"] = middle.translate(bytes.maketrans(b"+/", b"-_"))
    return out


def forms(value: str) -> dict[str, bytes]:
    """Every encoding of ``value`` the scanners look for: form name -> bytes.

    Forms equal to the raw value are dropped (one hit per occurrence, named ``raw``).
    """
    raw = value.encode()
    out: dict[str, bytes] = {"raw": raw}
    candidates = {
        "url": quote(value, safe="").encode(),
        "url_plus": quote_plus(value, safe="").encode(),
        **_base64_forms(raw),
        "json": json.dumps(value)[1:-1].encode(),
    }
    for name, enc in candidates.items():
        if enc not in out.values():
            out[name] = enc
    return out


@dataclass(frozen=True)
class Hit:
    """One occurrence of a secret: ``where`` (file, key, response...), the secret's
    ``name``, the ``form`` it was found in and ``context`` (the secret masked)."""

    where: str
    name: str
    form: str
    context: str

    def __str__(self) -> str:
        return f"{self.where}: {self.name} ({self.form}) in ...{self.context}..."


@dataclass
class Sentinels:
    """Named secret values; ``add`` more (e.g. generated passwords) as they are found."""

    values: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, value: str) -> None:
        """Register ``value`` as secret ``name`` (values under 8 characters are refused:
        they would match by chance)."""
        if len(value) < 8:
            raise ValueError(f"secret {name!r} is too short to scan for reliably")
        self.values[name] = value

    def patterns(self) -> Iterator[tuple[str, str, bytes]]:
        """``(name, form, bytes)`` for every secret and form."""
        for name, value in self.values.items():
            for form, enc in forms(value).items():
                yield name, form, enc

    def mask(self, text: bytes) -> str:
        """``text`` decoded with every form of every secret replaced by ``<name>``."""
        for name, _form, enc in self.patterns():
            text = text.replace(enc, f"<{name}>".encode())
        return text.decode("utf-8", errors="replace")


def scan_bytes(data: bytes, where: str, sentinels: Sentinels) -> list[Hit]:
    """Every occurrence of every form of every secret in ``data``."""
    hits: list[Hit] = []
    for name, form, enc in sentinels.patterns():
        start = data.find(enc)
        while start >= 0:
            ctx = data[max(0, start - _CONTEXT): start + len(enc) + _CONTEXT]
            hits.append(Hit(where, name, form, sentinels.mask(ctx)))
            start = data.find(enc, start + 1)
    return hits


def private_mode(path: Path) -> bool:
    """True when only the owner may read or write ``path`` (no group/other bits)."""
    return not path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO)


def scan_tree(
    root: Path, sentinels: Sentinels, exclude: Iterable[str] = ()
) -> tuple[list[Path], list[Path], list[Hit]]:
    """Scan every regular file under ``root`` (recursively, binary files too).

    Parameters
    ----------
    exclude
        File names (not paths) that are *meant* to hold a secret (a 0600 credentials
        file): not scanned, returned as excluded so the caller can check their mode.

    Returns
    -------
    scanned, excluded, hits
    """
    names = set(exclude)
    scanned: list[Path] = []
    excluded: list[Path] = []
    hits: list[Hit] = []
    for p in sorted(root.rglob("*")):
        if p.is_symlink() or not p.is_file():
            continue
        if p.name in names:
            excluded.append(p)
            continue
        scanned.append(p)
        hits += scan_bytes(p.read_bytes(), str(p), sentinels)
    return scanned, excluded, hits


def scan_sqlite(path: Path, sentinels: Sentinels) -> tuple[dict[str, int], list[Hit]]:
    """Every row, every column of every table of the SQLite file ``path``.

    Returns ``(rows per table, hits)``; a hit's ``where`` is ``table[rowid].column``.
    """
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    counts: dict[str, int] = {}
    hits: list[Hit] = []
    try:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cur = con.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - names from the db
            cols = [d[0] for d in cur.description]
            n = 0
            for row in cur:
                n += 1
                for col, value in zip(cols, row, strict=True):
                    data = value if isinstance(value, bytes) else str(value).encode()
                    hits += scan_bytes(data, f"{path.name}:{table}[{n}].{col}", sentinels)
            counts[table] = n
    finally:
        con.close()
    return counts, hits


def _redis_values(client: Any, key: bytes, kind: str) -> Iterator[bytes]:
    if kind == "string":
        yield client.get(key) or b""
    elif kind == "hash":
        for k, v in client.hgetall(key).items():
            yield k
            yield v
    elif kind == "list":
        yield from client.lrange(key, 0, -1)
    elif kind == "set":
        yield from client.smembers(key)
    elif kind == "zset":
        for member, _score in client.zrange(key, 0, -1, withscores=True):
            yield member
    elif kind == "stream":
        last = b"-"
        while True:
            entries = client.xrange(key, min=last, max="+", count=1000)
            if last != b"-":
                entries = entries[1:]  # the first is the previous page's last
            if not entries:
                break
            for _entry_id, fields in entries:
                for k, v in fields.items():
                    yield k
                    yield v
            last = entries[-1][0]
            if isinstance(last, str):
                last = last.encode()


def redis_items(client: Any) -> Iterator[tuple[str, str, bytes]]:
    """``(type, where, bytes)`` for every key of the client's database: its name and
    every value (string, hash fields and values, list/set/zset members, every field of
    every stream entry).

    ``client`` is a synchronous redis-py (or fakeredis) client *without*
    ``decode_responses``.
    """
    for key in client.scan_iter(count=500):
        kind = client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        name = key.decode(errors="replace")
        yield "key", f"redis key name {name}", key
        for value in _redis_values(client, key, kind):
            yield kind, f"redis {kind} {name}", value


def scan_redis(client: Any, sentinels: Sentinels) -> tuple[dict[str, int], list[Hit]]:
    """Scan :func:`redis_items`; returns ``(items scanned per type, hits)``."""
    counts: dict[str, int] = {}
    hits: list[Hit] = []
    for kind, where, data in redis_items(client):
        counts[kind] = counts.get(kind, 0) + 1
        hits += scan_bytes(data, where, sentinels)
    return counts, hits
