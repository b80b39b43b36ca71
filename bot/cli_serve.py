"""`labmate serve`: the Slack bot."""

from __future__ import annotations

import logging
import os
import signal
import threading

import click

from bot.cli import main, settings_of


@main.command()
@click.option("--mode", type=click.Choice(["socket", "http"]),
              help="socket (default when SLACK_APP_TOKEN is set) or http (needs SLACK_SIGNING_SECRET).")
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP mode: address to listen on.")
@click.option("--port", default=3000, show_default=True, type=int, help="HTTP mode: port.")
@click.pass_context
def serve(ctx, mode: str | None, host: str, port: int) -> None:
    """Run the Slack bot (Socket Mode, or HTTP with --mode http)."""
    from bot.app import TOKEN_HELP, create_app
    from bot.services import Services
    from core.errors import ConfigError

    env = os.environ
    mode = mode or ("socket" if env.get("SLACK_APP_TOKEN") else "http")
    missing = ["SLACK_BOT_TOKEN"] + (["SLACK_APP_TOKEN"] if mode == "socket" else ["SLACK_SIGNING_SECRET"])
    if any(not env.get(name) for name in missing):
        raise ConfigError(f"Missing {', '.join(n for n in missing if not env.get(n))}.\n{TOKEN_HELP}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_of(ctx)
    services = Services(settings)
    app = create_app(settings, services, env)
    click.echo("Loading the index and the embedding model…")
    services.warm_up()
    services.messenger.start_redelivery(settings.slack.redeliver_seconds)
    # Scheduled reports ([reports]): kept in the bot database, so they survive restarts; a run
    # missed within the grace period runs once now, and two bots sharing the database post it once.
    services.start_scheduler()
    worker = _start_training(settings, services)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if mode == "http":
        from bot.serve import EVENTS_PATH, start_http

        server = start_http(app, host, port)
        click.echo(f"labmate is listening on http://{host}:{server.server_port}{EVENTS_PATH}")
    else:
        from bot.serve import socket_handler

        handler = socket_handler(app, env)
        handler.connect()
        click.echo("labmate is connected to Slack (Socket Mode).")
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    if worker:
        worker.stop()  # running jobs checkpoint and resume on the next start
    services.close()


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
