"""Mesh configuration: pydantic-settings from a TOML file and the environment.

Precedence (highest first): constructor arguments, environment variables
(``TRADINGMESH_`` prefix, ``__`` between nested names, e.g.
``TRADINGMESH_RISK__MIN_CONFIDENCE=0.8``), the TOML file named by
``TRADINGMESH_CONFIG`` (default ``config/tradingmesh.toml`` if present), defaults.
``REDIS_URL`` and ``DATABASE_URL`` are also read without the prefix.

A bad value raises :class:`ConfigError` naming the field.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from backend.channels import compact_symbol
from backend.common import ConfigError
from backend.compliance.config import ComplianceConfig
from backend.risk.config import RiskConfig
from backend.runtime.secretfiles import check_config_secrets
from backend.strategies.config import COMBINED, StrategyConfig
from backend.venues.config import PaperConfig, VenueConfig

ROOT = Path(__file__).resolve().parent.parent


class OrchestratorConfig(BaseModel):
    """Supervision parameters."""

    model_config = ConfigDict(extra="forbid")  # a typo in the section is an error

    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    heartbeat_ttl_s: float = Field(default=5.0, gt=0)
    restart_backoff_base_s: float = Field(default=0.5, gt=0)
    restart_backoff_max_s: float = Field(default=30.0, gt=0)
    max_restarts: int = Field(default=5, ge=1)
    restart_window_s: float = Field(default=120.0, gt=0)
    shutdown_grace_s: float = Field(default=10.0, gt=0)
    start_timeout_s: float = Field(default=60.0, gt=0)
    #: An input an agent cannot handle for this long because of a database error raises
    #: an alert (execution also halts trading: an order or the kill switch is stuck).
    stuck_alert_s: float = Field(default=60.0, gt=0)


class ApiConfig(BaseModel):
    """The orchestrator's REST control plane (FastAPI under uvicorn)."""

    model_config = ConfigDict(extra="forbid")  # a typo in the section is an error

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)  # 0 = pick a free port
    #: Seconds ``POST /api/emergency-stop`` waits for execution's confirmation.
    emergency_wait_s: float = Field(default=10.0, ge=0, le=60)


class DashboardConfig(BaseModel):
    """The Streamlit dashboard that ``tradingmesh up`` serves (it reads the REST API)."""

    model_config = ConfigDict(extra="forbid")  # a typo in the section is an error

    enabled: bool = True
    #: The dashboard has no login of its own and holds the API token: keep it on loopback
    #: unless something in front of it authenticates (``up`` warns otherwise).
    host: str = "127.0.0.1"
    port: int = Field(default=8502, ge=0, le=65535)  # 0 = pick a free port
    #: Seconds between the pages' refreshes.
    refresh_s: float = Field(default=1.5, ge=0.5, le=30)


class OptimizerAgentConfig(BaseModel):
    """The optimizer agent: when it runs the GA, with what, and what happens to a result.

    A run optimizes one symbol's strategy on the bars the market_data agent published
    (the ``market_data`` stream), walk-forward; its parameters are *proposed* when their
    mean out-of-sample score beats the running parameters' score on the same windows by
    more than ``margin`` (objective units).  A proposal is applied to the symbol's
    strategy agent at once (``auto_apply``) or when a person approves it
    (``POST /api/optimizer/runs/{id}/apply``).
    """

    model_config = ConfigDict(extra="forbid")  # a typo in the section is an error

    #: Seconds between scheduled runs of every symbol in ``symbols`` (0 = no schedule:
    #: runs only when ``POST /api/optimizer/runs`` asks).
    interval_s: float = Field(default=0.0, ge=0)
    #: Symbols the schedule optimizes (empty = every configured symbol).
    symbols: list[str] = Field(default_factory=list)
    auto_apply: bool = True
    margin: float = Field(default=0.1, ge=0)
    #: Never propose a run flagged overfit (mean OOS < ``overfit_ratio`` x mean IS).
    reject_overfit: bool = True
    objective: Literal["sharpe", "sortino", "calmar", "return_dd"] = "sharpe"
    population: int = Field(default=30, ge=4, le=10_000)
    generations: int = Field(default=10, ge=0, le=10_000)
    walk_forward: int = Field(default=3, ge=1, le=100)
    seed: int = Field(default=0, ge=0)
    #: ``risk`` (the mesh's own trading model, compiled: what the mesh trades) or
    #: ``all-in`` (buy with the whole equity on a crossing; for comparison).
    sizing: Literal["all-in", "risk"] = "risk"
    #: Most recent bars of the symbol a run uses.
    max_bars: int = Field(default=5000, ge=100)
    #: Fewest bars a run needs (besides 50 per walk-forward window); else it fails.
    min_bars: int = Field(default=300, ge=2)
    #: Local worker processes for fitness evaluations (1 = the agent's own thread).
    workers: int = Field(default=1, ge=1, le=64)


class MlConfig(BaseModel):
    """The ``ml_classifier`` strategy's models in the live mesh (``backend.ml``).

    A strategy agent running ``ml_classifier`` retrains its symbol's model on the bars it
    holds when the live hit rate (share of the model's up/down calls that the sign of the
    forward return confirmed, over the last ``hit_rate_window`` resolved calls) falls
    below ``hit_rate_threshold`` with at least ``min_predictions`` resolved, or every
    ``retrain_every_bars`` bars; the new version is used from the next bar.
    """

    model_config = ConfigDict(extra="forbid")  # a typo in the section is an error

    #: Directory of the versioned models ("" = ``<var_dir>/models``).
    model_dir: str = ""
    hit_rate_threshold: float = Field(default=0.5, ge=0, le=1)
    hit_rate_window: int = Field(default=200, ge=1, le=100_000)
    min_predictions: int = Field(default=100, ge=1, le=100_000)
    #: Scheduled retrain every this many bars of the symbol (0 = off).
    retrain_every_bars: int = Field(default=0, ge=0)
    #: Bars the agent must hold before it trains its first model (trigger ``initial``).
    min_train_bars: int = Field(default=1000, ge=300)
    #: Publish the live metrics on ``model_metrics`` every this many bars.
    metrics_every_bars: int = Field(default=50, ge=1)
    #: Bars to wait after a failed training before trying again.
    retry_after_bars: int = Field(default=100, ge=1)


class Settings(BaseSettings):
    """All configuration of one mesh."""

    model_config = SettingsConfigDict(
        env_prefix="TRADINGMESH_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "TRADINGMESH_REDIS_URL", "redis_url"),
    )
    database_url: str = Field(
        default="",
        validation_alias=AliasChoices("DATABASE_URL", "TRADINGMESH_DATABASE_URL", "database_url"),
    )
    var_dir: Path = ROOT / "var"
    data_dir: Path = ROOT / "data" / "sample"
    symbols: list[str] = Field(
        default_factory=lambda: ["ETH/BTC", "LTC/BTC", "ADA/BTC", "DASH/BTC"]
    )
    timeframe: str = "5m"
    #: "max" (as fast as the mesh takes it, with back-pressure) or a real-time multiple.
    replay_speed: Literal["max"] | float = "max"
    #: Stop after this many bars per symbol (0 = all).
    replay_limit: int = Field(default=0, ge=0)
    #: Where market_data gets bars: the CSV replay, or live candles polled through ccxt
    #: from ``venue.ccxt`` (backend.marketdata.live_feed; ``replay_limit`` then caps bars per
    #: symbol).
    market_data_source: Literal["replay", "ccxt"] = "replay"
    default_strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    strategies: dict[str, StrategyConfig] = Field(default_factory=dict)  # per compact symbol
    compliance: ComplianceConfig = Field(default_factory=ComplianceConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    paper: PaperConfig = Field(default_factory=PaperConfig)
    #: The venue execution trades on (paper by default; see backend.venues.config).
    venue: VenueConfig = Field(default_factory=VenueConfig)
    orchestrator: OrchestratorConfig = Field(default_factory=OrchestratorConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)
    optimizer: OptimizerAgentConfig = Field(default_factory=OptimizerAgentConfig)
    ml: MlConfig = Field(default_factory=MlConfig)
    #: Bearer token of the REST API (``TRADINGMESH_API_TOKEN``); else ``var/api_token``.
    api_token: SecretStr | None = None
    stream_maxlen: int = Field(default=200_000, ge=1000)
    log_level: str = "INFO"

    @field_validator("var_dir", "data_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return Path(v).expanduser().resolve()

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one symbol is required")
        for s in v:
            if "/" not in s:
                raise ValueError(f"symbol {s!r} must be BASE/QUOTE, e.g. ETH/BTC")
        quotes = {s.split("/")[1] for s in v}
        if len(quotes) > 1:
            raise ValueError(f"all symbols must share one quote currency, got {sorted(quotes)}")
        return v

    @model_validator(mode="after")
    def _one_account_currency(self) -> Settings:
        """Equity adds cash and positions marked in the symbols' quote currency: a live
        account's currency must be that one (else equity mixes currencies).  The paper
        account is kept in the symbols' quote whatever ``paper.quote_currency`` says (a
        label only)."""
        quote = self.symbols[0].split("/")[1]
        acct = self.venue.quote_currency
        if acct and acct != quote:
            raise ValueError(
                f"venue.quote_currency is {acct!r} but the symbols are quoted in {quote!r}: "
                "equity would add amounts in two currencies; trade symbols quoted in the "
                "account currency (or leave venue.quote_currency empty to use the symbols')")
        return self

    @model_validator(mode="after")
    def _combined_strategies_build(self) -> Settings:
        """A ``combined`` strategy is built once on load, so an unknown component or a
        parameter a component does not declare is refused here, naming the field.

        The builder is imported only when some strategy is ``combined``: loading settings
        stays free of the strategies and their numeric libraries otherwise (start-up
        time of every command)."""
        configs = {"default_strategy": self.default_strategy,
                   **{f"strategies.{k}": v for k, v in self.strategies.items()}}
        combined = {where: c for where, c in configs.items() if c.name == COMBINED}
        if combined:
            from backend.strategies.build import build_strategy

            for where, cfg in combined.items():
                try:
                    build_strategy(cfg)
                except ValueError as exc:
                    raise ValueError(f"{where}: {exc}") from None
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_path()
        if path is not None:
            check_config_secrets(path)  # a secret in a world-readable file is refused
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    # ---------------------------------------------------------------- helpers
    def strategy_for(self, symbol: str) -> StrategyConfig:
        """The strategy configured for ``symbol`` (any symbol form), else the default."""
        return self.strategies.get(compact_symbol(symbol), self.default_strategy)

    def db_url(self) -> str:
        """SQLAlchemy URL: ``DATABASE_URL`` or a SQLite file under ``var_dir``."""
        return self.database_url or f"sqlite:///{self.var_dir / 'tradingmesh.db'}"


def strip_url_userinfo(url: str) -> str:
    """``url`` without its ``user:password@`` part (for files and logs)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def write_resolved(settings: Settings, path: Path) -> Path:
    """Write ``settings`` as the JSON file agents load through ``TRADINGMESH_SETTINGS_FILE``.

    No secrets: no API token, and ``redis_url`` and ``database_url`` without user and
    password (an agent gets its Redis URL, with its own ACL user, from ``REDIS_URL``, and
    the database's from ``DATABASE_URL``: see :func:`load_settings`).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    public = settings.model_copy(update={
        "redis_url": strip_url_userinfo(settings.redis_url),
        "database_url": strip_url_userinfo(settings.database_url)})
    path.write_text(public.model_dump_json(indent=2, exclude={"api_token"}))
    return path


def config_path() -> Path | None:
    """The TOML config file in force, or ``None``.

    Raises
    ------
    ConfigError
        ``TRADINGMESH_CONFIG`` names a file that does not exist.
    """
    env = os.environ.get("TRADINGMESH_CONFIG")
    if env:
        p = Path(env)
        if not p.is_file():
            raise ConfigError(f"TRADINGMESH_CONFIG={env}: no such file")
        return p
    default = ROOT / "config" / "tradingmesh.toml"
    return default if default.is_file() else None


#: Env var naming a JSON file of fully resolved settings.  The orchestrator writes one
#: per mesh so that every agent process runs with exactly the same configuration.
SETTINGS_FILE_ENV = "TRADINGMESH_SETTINGS_FILE"


def _did_you_mean(loc: tuple[int | str, ...]) -> str:
    """`` (did you mean 'min_confidence'?)`` for an unknown key at ``loc``, or ``""``."""
    model: Any = Settings
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return ""
        model = field.annotation
    known = list(getattr(model, "model_fields", {}))
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_settings(**overrides: object) -> Settings:
    """Build :class:`Settings`; raise :class:`ConfigError` with a readable message.

    When ``TRADINGMESH_SETTINGS_FILE`` is set (agent processes started by the
    orchestrator) the resolved settings are read from that JSON file instead; only
    ``REDIS_URL`` (or ``TRADINGMESH_REDIS_URL``) and ``DATABASE_URL`` (or
    ``TRADINGMESH_DATABASE_URL``) from the environment win over it: each agent connects
    with its own ACL user, and the file holds no password.
    """
    resolved = os.environ.get(SETTINGS_FILE_ENV)
    try:
        if resolved and not overrides:
            s = Settings.model_validate_json(Path(resolved).read_bytes())
            update = {field: url for field, url in (
                ("redis_url", os.environ.get("REDIS_URL")
                 or os.environ.get("TRADINGMESH_REDIS_URL")),
                ("database_url", os.environ.get("DATABASE_URL")
                 or os.environ.get("TRADINGMESH_DATABASE_URL"))) if url}
            return s.model_copy(update=update) if update else s
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            + (_did_you_mean(e["loc"]) if e["type"] == "extra_forbidden" else "")
            for e in exc.errors()
        ]
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None
    except (OSError, ValueError) as exc:  # TOML syntax errors, unreadable file
        raise ConfigError(f"invalid configuration: {exc}") from None
