"""Secrets from files: refused when other users can read them, never echoed.

A secrets file holds credentials (API keys, passwords, tokens) as TOML (``key =
"value"``, tables allowed) or as ``KEY=value`` lines (``#`` comments, blank lines and
optional quotes around the value).  It is refused with :class:`SecretFileError` when it
is readable or writable by *other* users (mode ``o+r`` / ``o+w``): ``chmod 600 FILE``
fixes it.  Values come back as :class:`pydantic.SecretStr` so they print as
``**********`` in logs, reprs and exceptions.

The same permission rule applies to a TOML configuration file that contains a secret
(:func:`check_config_secrets`).
"""

from __future__ import annotations

import json
import os
import re
import stat
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

__all__ = [
    "SECRET_KEYS",
    "SecretFileError",
    "check_config_secrets",
    "check_private",
    "read_secrets_file",
    "secret_from",
    "write_secrets_file",
]

#: Key names (case-insensitive, compared after removing ``-``/``_``) that hold secrets.
SECRET_KEYS: frozenset[str] = frozenset(
    {"apitoken", "token", "apikey", "secret", "password", "passphrase", "privatekey"}
)


class SecretFileError(ValueError):
    """A secrets file is missing, unreadable, malformed or readable by other users."""


def _norm(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def check_private(path: Path, what: str = "secrets file") -> None:
    """Raise :class:`SecretFileError` unless ``path`` is a file other users can't access.

    Parameters
    ----------
    path
        The file to check.
    what
        How to name it in the message.

    Raises
    ------
    SecretFileError
        Missing, or mode has ``o+r`` / ``o+w`` (the message gives the mode and the fix).
    """
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise SecretFileError(f"{what} {path}: {exc.strerror}") from None
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        raise SecretFileError(
            f"{what} {path} is accessible by other users (mode {stat.filemode(mode)}); "
            f"refusing to use it: run `chmod 600 {path}`"
        )


def _parse_lines(text: str, path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            # never show the line: it may be a secret
            raise SecretFileError(f"secrets file {path}, line {n}: expected KEY=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in data.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            yield from _flatten(v, name + ".")
        else:
            yield name, v


def read_secrets_file(path: Path | str) -> dict[str, SecretStr]:
    """Read a secrets file (TOML, else ``KEY=value`` lines).

    Returns
    -------
    dict
        Dotted key (``"binance.secret"`` for a TOML table) -> value as ``SecretStr``.
        Keys keep their case.

    Raises
    ------
    SecretFileError
        Accessible by other users, unreadable, or neither valid TOML nor ``KEY=value``
        lines.  The message never contains a value from the file.
    """
    p = Path(path).expanduser()
    check_private(p)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretFileError(f"secrets file {p}: cannot read it ({type(exc).__name__})") from None
    try:
        data = tomllib.loads(text)
        pairs = dict(_flatten(data))
    except tomllib.TOMLDecodeError:
        pairs = dict(_parse_lines(text, p))
    return {k: SecretStr(str(v)) for k, v in pairs.items()}


def write_secrets_file(
    path: Path | str, values: Mapping[str, str | SecretStr], header: str = ""
) -> Path:
    """Write ``key = "value"`` lines (TOML that :func:`read_secrets_file` reads back),
    readable and writable by the owner only (mode 0600), atomically (temp file + rename).

    Parameters
    ----------
    path
        The file to (re)write.
    values
        Bare keys (letters, digits, ``_``, ``-``) -> values.
    header
        Comment put at the top (each line prefixed with ``#``).

    Raises
    ------
    SecretFileError
        A key is not a bare TOML key (the message names the key, never a value).
    """
    p = Path(path).expanduser()
    lines = [f"# {h}".rstrip() for h in header.splitlines()]
    for key, value in values.items():
        if not re.fullmatch(r"[A-Za-z0-9_-]+", key):
            raise SecretFileError(f"secrets file {p}: key {key!r} is not a bare key")
        raw = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        lines.append(f"{key} = {json.dumps(raw)}")
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        os.chmod(tmp, 0o600)  # O_CREAT's mode is masked by the umask; be explicit
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p


def secret_from(
    env_name: str, file: Path | str | None, key: str, environ: Mapping[str, str] | None = None
) -> SecretStr | None:
    """One secret: the environment variable ``env_name`` if set and non-empty, else
    ``key`` from the secrets ``file`` (matched case-insensitively, also as the last part
    of a dotted key), else ``None``.

    Raises
    ------
    SecretFileError
        As :func:`read_secrets_file` when the file is used.
    """
    env = os.environ if environ is None else environ
    value = env.get(env_name, "") if env_name else ""
    if value:
        return SecretStr(value)
    if file is None:
        return None
    want = _norm(key)
    for k, v in read_secrets_file(file).items():
        if _norm(k) == want or _norm(k.rsplit(".", 1)[-1]) == want:
            return v
    return None


def check_config_secrets(path: Path) -> None:
    """Refuse a TOML config file that holds a secret and is accessible by other users.

    A key counts as a secret when its name is in :data:`SECRET_KEYS` (normalised) and its
    value is a non-empty string.  A file without secrets may be world-readable.

    Raises
    ------
    SecretFileError
        The file holds a secret and its mode has ``o+r``/``o+w`` (message names the key,
        never the value).
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return  # the settings loader reports unreadable/invalid files itself
    keys = [k for k, v in _flatten(data)
            if _norm(k.rsplit(".", 1)[-1]) in SECRET_KEYS and isinstance(v, str) and v]
    if keys:
        check_private(path, what=f"config file (holds secret {keys[0]!r})")
