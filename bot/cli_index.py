"""`labmate index ...`: add, remove, stats, rebuild."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bot.cli import library_of, main, settings_of


@main.group()
def index() -> None:
    """Build and maintain the lab's paper index."""


@index.command("add")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--collection", help="Tag the papers with a collection name (filter with --collection).")
@click.option("--from-config", is_flag=True, help="Add the [index] sources listed in config.toml.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def add(ctx, paths: tuple[Path, ...], collection: str | None, from_config: bool, as_json: bool) -> None:
    """Index .bib, .pdf, .jsonl/.json and .csv files (folders recursively)."""
    from retrieval.ingest import add_paths

    targets = list(paths) + (list(settings_of(ctx).index.sources) if from_config else [])
    if not targets and from_config:
        click.echo("No [index] sources in the config yet: add files with `labmate index add PATH...` "
                   "or list them under [index] sources in config.toml.")
        return
    if not targets:
        raise click.UsageError("Nothing to add: give files or folders, e.g. `labmate index add papers/`.")
    library = library_of(ctx)
    report = add_paths(library, targets, collection)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.summary())
    if report.problems and not (report.added or report.merged or report.unchanged):
        ctx.exit(2)


@index.command("remove")
@click.argument("ids", nargs=-1, required=True)
@click.pass_context
def remove(ctx, ids: tuple[str, ...]) -> None:
    """Remove papers by id (or by an id they were merged under)."""
    from retrieval.ingest import remove_papers

    removed = remove_papers(library_of(ctx), list(ids))
    click.echo(f"Removed {len(removed)} paper(s): {', '.join(removed)}")


@index.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def stats(ctx, as_json: bool) -> None:
    """Papers, passages, model, index type and size on disk."""
    data = library_of(ctx).stats()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    kind = data["index_kind"] + (f" (nprobe {data['nprobe']})" if data["index_kind"] == "ivf" else " (exact)")
    click.echo(f"Index:      {data['folder']}\nPapers:     {data['papers']}\nPassages:   {data['passages']}\n"
               f"Model:      {data['model']} ({data['dim']} dimensions)\nIndex type: {kind}\n"
               f"On disk:    {data['size_bytes'] / 1e6:.1f} MB")
    if data["collections"]:
        click.echo("Collections: " + ", ".join(f"{k} ({v})" for k, v in data["collections"].items()))


@index.command("rebuild")
@click.pass_context
def rebuild(ctx) -> None:
    """Re-embed the whole library with the configured model (after changing [embedding] model)."""
    from retrieval.ingest import rebuild as rebuild_library

    count = rebuild_library(library_of(ctx, check_model=False))
    click.echo(f"Re-embedded {count} passages; the index is ready.")
