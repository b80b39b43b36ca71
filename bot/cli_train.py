"""`labmate train ...`: submit, watch, cancel, resume and use fine-tuning jobs; `train serve`."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

from bot.cli import main, settings_of


@main.group()
def train() -> None:
    """Fine-tune models: token classification (NER), text classification, LoRA on causal LMs.

    \b
    labmate train submit specs/ncbi.toml --wait
    labmate train status
    labmate train logs 3
    labmate train predict 3 test.tsv --output predicted.tsv
    """


def _service(ctx):
    from training.service import make_service

    return make_service(settings_of(ctx).training)


@train.command()
@click.argument("spec", metavar="SPEC")
@click.option("--wait", is_flag=True, help="Return when the job ends (runs it here if no worker is running).")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@click.pass_context
def submit(ctx, spec: str, wait: bool, as_json: bool) -> None:
    """Queue the job spec file SPEC (a .toml file, or the name of a preset in [training] specs_dir)."""
    service = _service(ctx)
    path = Path(spec).expanduser()
    if path.is_file():
        job = service.submit(path.read_text(encoding="utf-8"), base_dir=str(path.resolve().parent),
                             source=path.name, origin={"user": os.environ.get("USER", "cli")})
    else:
        job = service.submit_preset(spec, origin={"user": os.environ.get("USER", "cli")})
    if not as_json:
        click.echo(f"job {job.id} ({job.name}) queued")
    if wait:
        job = _wait(ctx, service, job.id, quiet=as_json)
    _show(job, as_json)
    if wait and job.state != "succeeded":
        sys.exit(1)


def _wait(ctx, service, job_id: int, quiet: bool):
    """Run the job here when no worker would pick it up, else follow it until it ends."""
    from training.service import LocalService
    from training.worker import Worker, live_workers

    settings = settings_of(ctx).training
    if isinstance(service, LocalService) and not live_workers(service.store, settings):
        if not quiet:
            click.echo("no worker is running: running the job in this process (Ctrl-C stops it; it can resume)",
                       err=True)
        return Worker(settings, service.store).run_now(job_id)
    last = ""
    while not (job := service.get(job_id)).finished:
        line = _progress_line(job)
        if line != last and not quiet:
            click.echo(line, err=True)
            last = line
        time.sleep(max(1.0, settings.poll_seconds))
    return job


@train.command()
@click.argument("job_id", required=False, type=int)
@click.option("--all", "show_all", is_flag=True, help="Also list finished jobs (the latest 20).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status(ctx, job_id: int | None, show_all: bool, as_json: bool) -> None:
    """Show job JOB_ID, or the queued and running jobs (with --all, recent ones too)."""
    service = _service(ctx)
    if job_id is not None:
        _show(service.get(job_id), as_json)
        return
    jobs = service.list(active=not show_all)
    if as_json:
        click.echo(json.dumps([j.to_dict() for j in jobs], indent=2))
        return
    if not jobs:
        click.echo("no jobs queued or running" + ("" if show_all else " (--all lists finished ones)"))
    for job in jobs:
        click.echo(f"{job.id:>4}  {job.state:<9}  {job.name[:30]:<30}  {_progress_line(job)}")


@train.command()
@click.argument("job_id", type=int)
@click.pass_context
def cancel(ctx, job_id: int) -> None:
    """Cancel job JOB_ID (a running job saves a checkpoint and stops)."""
    job = _service(ctx).cancel(job_id)
    click.echo(f"job {job.id}: {'cancelled' if job.finished else 'cancelling (it stops at its next step)'}")


@train.command()
@click.argument("job_id", type=int)
@click.pass_context
def resume(ctx, job_id: int) -> None:
    """Queue failed or cancelled job JOB_ID again; it continues from its last checkpoint."""
    job = _service(ctx).resume(job_id)
    click.echo(f"job {job.id} queued again; it continues from its last checkpoint")


@train.command()
@click.argument("job_id", type=int)
@click.option("--lines", "-n", default=200, show_default=True, help="How many of the last lines.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the job ends.")
@click.pass_context
def logs(ctx, job_id: int, lines: int, follow: bool) -> None:
    """Print the log of job JOB_ID."""
    service = _service(ctx)
    text = service.logs(job_id, lines)
    click.echo(text)
    seen = text.splitlines()[-1:] if text else []
    while follow and not service.get(job_id).finished:
        time.sleep(2)
        new = service.logs(job_id, 50).splitlines()
        start = max((i + 1 for i, line in enumerate(new) if seen and line == seen[-1]), default=0)
        for line in new[start:]:
            click.echo(line)
        seen = new[-1:] or seen


@train.command()
@click.argument("job_id", type=int)
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help="Where to write predictions.")
@click.pass_context
def predict(ctx, job_id: int, input_path: Path, output: Path) -> None:
    """Label INPUT with job JOB_ID's best model. Token classification: INPUT has one token per
    line (a gold label after a tab is ignored), blank lines between sentences; OUTPUT gets
    `token<TAB>predicted_label` in the same layout."""
    from core.errors import UserError
    from training.service import LocalService

    service = _service(ctx)
    if not isinstance(service, LocalService):
        raise UserError("predict reads the trained model from disk: run it on the machine that trained the job "
                        "(where `labmate train serve` runs).")
    from training.predict import predict_file

    counts = predict_file(service.model_dir(job_id), input_path, output, device=settings_of(ctx).training.device)
    click.echo(f"wrote {output} ({', '.join(f'{v} {k}' for k, v in counts.items())})")


@train.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8600, show_default=True, type=int, help="Port of the HTTP API.")
@click.pass_context
def serve_training(ctx, host: str, port: int) -> None:
    """Run the job worker and its HTTP API (bearer token from [training] token_env), e.g. on the
    GPU machine; point the bot at it with [training] url."""
    import logging
    import signal
    import threading

    from training.api import require_token, start_api
    from training.service import LocalService
    from training.worker import Worker

    settings = settings_of(ctx).training
    token = os.environ.get(settings.token_env, "")
    require_token(token, settings.token_env)  # before the worker starts taking jobs
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service = LocalService(settings)
    worker = Worker(settings).start()
    server = start_api(service, host, port, token, worker=worker)
    click.echo(f"labmate training service on http://{host}:{server.server_port} (worker {worker.name})")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.shutdown()
    worker.stop()


def _progress_line(job) -> str:
    """`step 120/1000 · epoch 0.4/3 · loss 0.0812 · f1 0.7710 · 43.1 samples/s · ETA 6 min`."""
    p = job.progress or {}
    if job.state == "queued":
        return "waiting for a worker"
    if job.finished:
        best = (job.result or {}).get("best") or {}
        shown = {k: v for k, v in best.items() if k in ("f1", "accuracy", "macro_f1", "perplexity", "loss")}
        return job.state + "".join(f" · {k} {v:.4f}" for k, v in shown.items()) + (f" · {job.error}" if job.error else "")
    parts = [p.get("phase", "starting")]
    if p.get("total_steps"):
        parts.append(f"step {p.get('step', 0)}/{p['total_steps']}")
    if p.get("loss") is not None:
        parts.append(f"loss {p['loss']:.4f}")
    for name in ("f1", "accuracy", "perplexity"):
        if (p.get("eval") or {}).get(name) is not None:
            parts.append(f"{name} {p['eval'][name]:.4f}")
    if p.get("samples_per_s"):
        parts.append(f"{p['samples_per_s']:.1f} samples/s")
    if p.get("eta_s"):
        parts.append(f"ETA {max(1, round(p['eta_s'] / 60))} min")
    return " · ".join(parts)


def _show(job, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(job.to_dict(), indent=2))
        return
    click.echo(f"job {job.id} ({job.name}, {job.task}): {_progress_line(job)}")
    final = (job.result or {}).get("final") or {}
    for name, value in final.items():
        if isinstance(value, (int, float)):
            click.echo(f"  {name:<12} {value:.4f}")
