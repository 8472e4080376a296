"""``tradingmesh tail``: follow the mesh's pub/sub traffic live, one line per message.

Hooked into the main CLI by ``register(app)`` (``orchestrator/cli/main.py``).  Connects with
``REDIS_URL`` (a read-only user such as ``dashboard`` is enough: it only subscribes and
pings), prints a summary line per message (:func:`backend.mesh.tail.summarize`), and when
Redis drops it (e.g. it read too slowly and passed ``client-output-buffer-limit pubsub``)
logs the drop on stderr, reconnects with backoff and subscribes again.  On exit it prints
the count per channel on stderr.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import typer

__all__ = ["register", "tail"]


def tail(
    targets: list[str] = typer.Argument(
        None, help="Channels, or glob patterns such as '*' or 'agent:*' (default: every "
                   "mesh channel)."),
    count: int | None = typer.Option(
        None, "--count", "-n", min=1, help="Exit after this many messages."),
    status_file: Path | None = typer.Option(
        None, "--status-file", help="Keep a JSON status here: connected, reconnects, "
                                    "drops, received, per-channel counts."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No line per message."),
    redis_url: str | None = typer.Option(
        None, "--redis-url", help="Default: REDIS_URL (or the configured one), as the "
                                  "read-only 'dashboard' user when the launcher's ACL is on."),
) -> None:
    """Print every message published on the mesh's channels, live (read-only)."""
    import asyncio

    from redis.exceptions import AuthenticationError, ResponseError

    from backend import channels
    from backend.mesh.tail import LiveTail
    from backend.settings import ConfigError, load_settings
    from orchestrator.cli.state import credentials_file, redis_error_line

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s [tail] %(message)s")
    if redis_url is None:
        from backend.redisctl.acl import DASHBOARD, url_for_role
        from backend.runtime.secretfiles import SecretFileError

        try:  # with the launcher's ACL: as the read-only dashboard user
            s = load_settings()
            redis_url = url_for_role(DASHBOARD, s.redis_url, credentials_path=credentials_file(s))
        except (ConfigError, SecretFileError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    def out(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    runner = LiveTail(redis_url, targets or list(channels.ALL_CHANNELS),
                      on_line=None if quiet else out, status_path=status_file)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await runner.run(stop, count)

    try:
        asyncio.run(go())
    except AuthenticationError as exc:  # the launcher's ACL and no (or wrong) credentials
        typer.echo(f"error: {redis_error_line(redis_url, exc)}", err=True)
        raise typer.Exit(2) from None
    except ResponseError as exc:  # e.g. NOPERM: the ACL user may not subscribe there
        typer.echo(f"error: redis refused the subscription: {exc}", err=True)
        raise typer.Exit(2) from None
    st = runner.status
    per = ", ".join(f"{c} {n}" for c, n in st.channels.most_common())
    typer.echo(f"{st.received} messages ({per or 'none'}); {st.drops} drop(s), "
               f"{st.reconnects} reconnect(s)", err=True)


def register(app: typer.Typer) -> None:
    """Add the ``tail`` command to ``app``."""
    app.command("tail")(tail)
