"""`labmate serve`: the Slack bot."""

from __future__ import annotations

import logging
import os
import signal
import threading

import click

from bot.cli import main, settings_of
from core.errors import ConfigError


@main.command()
@click.option("--mode", type=click.Choice(["socket", "http"]),
              help="socket (default when SLACK_APP_TOKEN is set) or http (needs SLACK_SIGNING_SECRET).")
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP mode: address to listen on.")
@click.option("--port", default=3000, show_default=True, type=int,
              help="HTTP mode: port of /slack/events; local workspace: port of its page.")
@click.option("--local/--slack", "local", default=None,
              help="local: run against a local workspace in the browser (the default when SLACK_BOT_TOKEN "
                   "is not set); slack: a real Slack workspace (needs its tokens).")
@click.pass_context
def serve(ctx, mode: str | None, host: str, port: int, local: bool | None) -> None:
    """Run the Slack bot: in Slack (Socket Mode, or HTTP with --mode http), or, without Slack tokens,
    against a local workspace whose page opens in the browser."""
    from bot.app import TOKEN_HELP

    env = dict(os.environ)
    workspace = None
    if local if local is not None else not env.get("SLACK_BOT_TOKEN"):
        if mode == "socket":
            raise click.UsageError("The local workspace talks to the bot over HTTP; leave out --mode socket.")
        workspace, env = _open_workspace(port, env)
        mode, host, port = "http", "127.0.0.1", 0  # the bot's endpoint: a free port, loopback only
    mode = mode or ("socket" if env.get("SLACK_APP_TOKEN") else "http")
    missing = ["SLACK_BOT_TOKEN"] + (["SLACK_APP_TOKEN"] if mode == "socket" else ["SLACK_SIGNING_SECRET"])
    if any(not env.get(name) for name in missing):
        raise ConfigError(f"Missing {', '.join(n for n in missing if not env.get(n))}.\n{TOKEN_HELP}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _run(settings_of(ctx), env, mode, host, port, workspace)


def _open_workspace(port: int, env: dict[str, str]):
    from bot.local import start_workspace

    try:
        return start_workspace(port, env)
    except OSError as exc:
        raise ConfigError(f"Could not open the local workspace on 127.0.0.1:{port} ({exc.strerror or exc}); "
                          f"is another labmate running? Pick a free port with `labmate serve --port 3001`.") from None


def _run(settings, env: dict[str, str], mode: str, host: str, port: int, workspace) -> None:
    """Start everything, serve until SIGTERM or Ctrl-C, then stop cleanly."""
    from bot.app import create_app
    from bot.services import Services

    services = Services(settings)
    app = create_app(settings, services, env)
    serving = threading.Event()  # /healthz: 503 until Slack requests are served, and again on shutdown
    app.labmate_metrics.add_check("starting or stopping: not serving Slack requests", serving.is_set)
    metrics_server = _serve_metrics(settings, app.labmate_metrics)  # answers (503) while the index loads
    click.echo("Loading the index and the embedding model…")
    services.warm_up()
    services.messenger.start_redelivery(settings.slack.redeliver_seconds)
    # Scheduled reports ([reports]): kept in the bot database, so they survive restarts; a run
    # missed within the grace period runs once now, and two bots sharing the database post it once.
    services.start_scheduler()
    worker = _start_training(settings, services)
    if worker:

        app.labmate_metrics.add_check("training worker stopped", lambda: worker.alive)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if mode == "http":
        from bot.serve import EVENTS_PATH, start_http

        server = start_http(app, host, port)
        click.echo(f"labmate is listening on http://{host}:{server.server_port}{EVENTS_PATH}")
        if workspace is not None:
            _show_page(workspace, settings, services, f"http://127.0.0.1:{server.server_port}", env)
    else:
        from bot.serve import socket_handler

        handler = socket_handler(app, env)
        handler.connect()
        app.labmate_metrics.add_check("Socket Mode disconnected from Slack", handler.client.is_connected)
        click.echo("labmate is connected to Slack (Socket Mode).")
    serving.set()
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    serving.clear()
    if worker:
        worker.stop()  # running jobs checkpoint and resume on the next start
    services.close()
    if workspace is not None:
        workspace.stop()
    if metrics_server is not None:
        metrics_server.shutdown()


def _serve_metrics(settings, metrics):
    """/healthz and /metrics on [metrics] host:port (port 0: none). A busy port is reported, not
    fatal: the bot matters more than its metrics."""
    if not settings.metrics.port:
        return None
    from bot.metrics import serve_metrics

    host, port = settings.metrics.host, settings.metrics.port
    try:
        server = serve_metrics(metrics, host, port)
    except OSError as exc:
        click.echo(f"warning: no /healthz and /metrics: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                   "set [metrics] port (LABMATE_METRICS__PORT) to a free port, or 0 for none.", err=True)
        return None
    click.echo(f"Health and metrics on http://{host}:{server.server_port}/healthz and /metrics")
    return server


def _show_page(workspace, settings, services, app_url: str, env: dict[str, str]) -> None:
    """Open the page and say where it is; on a first start, index the demo library meanwhile
    (the page's notice says when it is ready)."""
    from bot.devslack.ui import PageSettings
    from bot.local import INDEXING, channel_ids, index_demo, manifest_commands, notice

    page = PageSettings(channels=channel_ids(settings.workspace.channels), notice=notice(INDEXING),
                        commands=manifest_commands())
    ui = workspace.open_page(app_url, env["SLACK_SIGNING_SECRET"], page)
    click.echo(f"\nNo Slack tokens set: labmate runs in a local workspace.\n"
               f"  Open {workspace.base_url}/ in your browser.\n"
               f"  (To connect to Slack instead, see README.md, 'Connect to Slack'.) Ctrl-C stops it.\n")
    ui.set_notice(notice(index_demo(settings, services)))


def _start_training(settings, services):
    """Progress reports for /train, and (unless jobs go to a `labmate train serve` elsewhere) the
    worker that runs them, in child processes so a job's crash never takes the bot down."""
    services.start_reports()
    training = settings.training
    if training.url or not training.run_worker:
        return None
    from training.worker import Worker

    worker = Worker(training, on_change=lambda job: services.reports.poke())
    click.echo(f"Training jobs run here (worker {worker.name}); queue in {training.database}")
    return worker.start()
