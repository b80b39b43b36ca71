"""The `labmate` command line. Heavy libraries load inside commands, so `--help` stays instant."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from core.errors import LabmateError


class LabmateGroup(click.Group):
    """Turns LabmateError into a one-line message and exit code 1 instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LabmateError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=LabmateGroup)
@click.option("--config", "config_path", type=click.Path(path_type=Path), envvar="LABMATE_CONFIG",
              help="Config file (default: $LABMATE_CONFIG or ./config.toml).")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """labmate: your lab's papers, drafts and training runs, from Slack or this terminal."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


def settings_of(ctx: click.Context):
    from bot.config import default_config_path, load_settings

    if "settings" not in ctx.obj:
        ctx.obj["settings"] = load_settings(ctx.obj.get("config_path") or default_config_path())
    return ctx.obj["settings"]


def library_of(ctx: click.Context, check_model: bool = True):
    from bot.services import open_library

    return open_library(settings_of(ctx), check_model=check_model)


from bot import cli_draft, cli_index, cli_papers, cli_serve, cli_train  # noqa: E402,F401  (commands register on `main`)
from bot import cli_report  # noqa: E402,F401  (`labmate report`)




if __name__ == "__main__":  # `python -m bot.cli`: the commands registered on the imported module's group
    from bot.cli import main as _main

    _main()
