"""`eventstitch serve`: the HTTP server (uvicorn) on the embedded default or a database URL."""

from __future__ import annotations

import copy
import logging
import os
from typing import Any

import click
import uvicorn

from eventstitch.auth import ensure_api_token
from eventstitch.config import (
    PREFIX,
    Config,
    ConfigError,
    load_config,
    masked_url,
    settings_markdown,
)
from eventstitch.files import private_dir
from eventstitch.protocol import LimitedHttpToolsProtocol
from eventstitch.storage import backend_of
from eventstitch.storage.sqlite.db import path_from_url
from eventstitch.storage.sqlite.writer_process import WriterProcess


@click.command(epilog="Settings (environment):\n\n" + settings_markdown().split("\n", 7)[7])
@click.option("--host", default=None, help="Bind address (EVENTSTITCH_HOST).")
@click.option("--port", type=int, default=None, help="Port (EVENTSTITCH_PORT).")
@click.option("--workers", type=int, default=None, help="Processes (EVENTSTITCH_WORKERS).")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the collector and the API."""
    # Workers are separate processes that read the environment, so options go there too.
    for name, value in (("HOST", host), ("PORT", port), ("WORKERS", workers)):
        if value is not None:
            os.environ[PREFIX + name] = str(value)
    try:
        config = load_config()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    private_dir(config.data_dir)
    token, created = ensure_api_token(config)
    if created:
        click.echo(
            f"Created an API token (kept in {config.data_dir / 'api-token'}):\n\n  {token}\n"
        )
        click.echo("Send it as 'Authorization: Bearer <token>' to every /api route.\n")
    click.echo(
        f"Eventstitch on http://{config.host}:{config.port} "
        f"({config.workers} worker(s), database {masked_url(config.resolved_database_url)})"
    )
    writer = _sqlite_writer(config)
    try:
        _run_uvicorn(config)
    finally:
        if writer is not None:
            writer.stop()  # after the workers: it commits what they handed it, then exits


def _sqlite_writer(config: Config) -> WriterProcess | None:
    """Start the SQLite writer process that every worker hands its events to, if the database
    is SQLite and the setting asks for it (see storage/sqlite/writer_process.py)."""
    url = config.resolved_database_url
    if backend_of(url) != "sqlite" or config.sqlite_writer != "PROCESS":
        return None
    writer = WriterProcess(path_from_url(url), dict(os.environ))
    writer.start()
    # Workers (spawned processes, or this one with one worker) read it from the environment.
    os.environ[PREFIX + "SQLITE_WRITER_SOCKET"] = str(writer.socket)
    return writer


def _run_uvicorn(config: Config) -> None:
    uvicorn.run(
        "eventstitch.app:create_server_app",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        log_level=config.log_level.lower(),
        log_config=_log_config(config.log_level),
        access_log=False,
        # No `server: uvicorn` on every answer: it tells a scanner what runs here, and each
        # header uvicorn sends is checked again on every response (about 1 µs).
        server_header=False,
        timeout_keep_alive=config.keep_alive_seconds,
        loop="uvloop",
        # httptools with the head budgets and the body timeout (see eventstitch.protocol).
        http=LimitedHttpToolsProtocol,
    )


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging, with Eventstitch's own loggers printed beside it at the configured
    level (without this only their warnings reached stderr, unformatted)."""
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    name = level.upper()
    log_config["loggers"]["eventstitch"] = {
        "handlers": ["default"],
        "level": name if isinstance(logging.getLevelName(name), int) else "INFO",
        "propagate": False,
    }
    return log_config
