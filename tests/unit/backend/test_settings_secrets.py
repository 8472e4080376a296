"""The resolved settings file the agents load holds no password; agents get the Redis and
database URLs with their passwords from the environment instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.settings import (
    SETTINGS_FILE_ENV,
    Settings,
    load_settings,
    strip_url_userinfo,
    write_resolved,
)

DB_PASSWORD = "db-Sentinel-0f9e8d7c"
REDIS_PASSWORD = "redis-Sentinel-1a2b3c4d"
DB_URL = f"postgresql+psycopg://trader:{DB_PASSWORD}@db.internal:5432/mesh"
REDIS_URL = f"redis://orchestrator:{REDIS_PASSWORD}@127.0.0.1:6390/0"


@pytest.fixture
def resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for k in ("REDIS_URL", "TRADINGMESH_REDIS_URL", "DATABASE_URL", "TRADINGMESH_DATABASE_URL",
              "TRADINGMESH_CONFIG", SETTINGS_FILE_ENV):
        monkeypatch.delenv(k, raising=False)
    s = Settings(redis_url=REDIS_URL, database_url=DB_URL, var_dir=tmp_path,
                 api_token="api-Sentinel-99887766")
    return write_resolved(s, tmp_path / "settings.json")


def test_the_resolved_file_holds_no_password(resolved: Path) -> None:
    text = resolved.read_text()
    for secret in (DB_PASSWORD, REDIS_PASSWORD, "api-Sentinel-99887766"):
        assert secret not in text
    s = Settings.model_validate_json(resolved.read_bytes())
    assert s.database_url == "postgresql+psycopg://db.internal:5432/mesh"
    assert s.redis_url == "redis://127.0.0.1:6390/0"


def test_an_agent_gets_the_urls_with_passwords_from_its_environment(
    resolved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SETTINGS_FILE_ENV, str(resolved))
    assert load_settings().database_url == "postgresql+psycopg://db.internal:5432/mesh"
    monkeypatch.setenv("DATABASE_URL", DB_URL)
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    s = load_settings()
    assert (s.database_url, s.redis_url) == (DB_URL, REDIS_URL)


@pytest.mark.parametrize(("url", "public"), [
    ("redis://:p%40ss@h:1/0", "redis://h:1/0"),
    ("redis://h:1/0", "redis://h:1/0"),
    ("sqlite:////var/x.db", "sqlite:////var/x.db"),
    ("", ""),
])
def test_strip_url_userinfo(url: str, public: str) -> None:
    assert strip_url_userinfo(url) == public
