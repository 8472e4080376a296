"""Secrets files and secret-holding config files: refused when other users can read them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backend.runtime.secretfiles import (
    SecretFileError,
    check_config_secrets,
    read_secrets_file,
    secret_from,
)
from backend.settings import ConfigError, load_settings

SENTINEL = "s3ntinel-SECRET-value-9f2c"


def _write(path: Path, text: str, mode: int) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_key_value_lines_and_quotes(tmp_path: Path) -> None:
    f = _write(tmp_path / "keys.env",
               f"# comment\nexport API_KEY='abc'\n\nSECRET=\"{SENTINEL}\"\n", 0o600)
    got = read_secrets_file(f)
    assert got["API_KEY"].get_secret_value() == "abc"
    assert got["SECRET"].get_secret_value() == SENTINEL
    assert SENTINEL not in repr(got)  # SecretStr hides the value


def test_toml_tables_flatten_to_dotted_keys(tmp_path: Path) -> None:
    f = _write(tmp_path / "keys.toml", f'[binance]\napi_key = "k"\nsecret = "{SENTINEL}"\n',
               0o600)
    got = read_secrets_file(f)
    assert got["binance.secret"].get_secret_value() == SENTINEL
    assert secret_from("", f, "secret").get_secret_value() == SENTINEL  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o602])
def test_world_accessible_file_is_refused(tmp_path: Path, mode: int) -> None:
    f = _write(tmp_path / "keys.env", f"SECRET={SENTINEL}\n", mode)
    with pytest.raises(SecretFileError, match="chmod 600") as err:
        read_secrets_file(f)
    assert SENTINEL not in str(err.value)


def test_malformed_line_error_does_not_echo_the_line(tmp_path: Path) -> None:
    f = _write(tmp_path / "keys.env", f"{SENTINEL}\n", 0o600)
    with pytest.raises(SecretFileError, match="line 1: expected KEY=value") as err:
        read_secrets_file(f)
    assert SENTINEL not in str(err.value)


def test_env_wins_over_file_and_missing_key_is_none(tmp_path: Path) -> None:
    f = _write(tmp_path / "keys.env", "SECRET=from-file\n", 0o600)
    assert secret_from("X_SECRET", f, "secret", {"X_SECRET": "from-env"}
                       ).get_secret_value() == "from-env"  # type: ignore[union-attr]
    assert secret_from("X_SECRET", f, "secret", {}).get_secret_value() == "from-file"  # type: ignore[union-attr]
    assert secret_from("X_SECRET", f, "password", {}) is None
    assert secret_from("X_SECRET", None, "secret", {}) is None


def test_config_file_with_secret_must_be_private(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _write(tmp_path / "tm.toml", f'api_token = "{SENTINEL}"\n', 0o644)
    monkeypatch.setenv("TRADINGMESH_CONFIG", str(cfg))
    monkeypatch.delenv("TRADINGMESH_SETTINGS_FILE", raising=False)
    with pytest.raises(ConfigError, match="holds secret 'api_token'.*chmod 600") as err:
        load_settings()
    assert SENTINEL not in str(err.value)
    os.chmod(cfg, 0o600)
    assert load_settings().api_token.get_secret_value() == SENTINEL  # type: ignore[union-attr]


def test_config_file_without_secret_may_be_world_readable(tmp_path: Path) -> None:
    cfg = _write(tmp_path / "tm.toml", 'log_level = "DEBUG"\n[venue.ccxt]\nsecret_env = "X"\n',
                 0o644)
    check_config_secrets(cfg)  # env var *names* are not secrets: no error
