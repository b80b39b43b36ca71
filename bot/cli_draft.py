"""`labmate draft SECTION`: a section drafted from the lab's papers (or from a run's metrics)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bot.cli import library_of, main, settings_of



@main.command()
@click.argument("section", metavar="SECTION")
@click.option("--topic", default="", help="What the section is about (the retrieval query).")
@click.option("--papers", default="", metavar="ID,ID", help="Use these papers as the sources instead of searching.")
@click.option("--k", "k", type=click.IntRange(1, 30), help="How many papers to retrieve (default from config).")
@click.option("--metrics", type=click.Path(path_type=Path),
              help="results only: a metrics JSON file (a training run's) to report.")
@click.option("--out", type=click.Path(path_type=Path), metavar="BASE",
              help="Also write BASE.md and BASE.bib.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"section", "text", "citations", "references", "bibtex", "warnings"}.')
@click.pass_context
def draft(ctx, section, topic, papers, k, metrics, out, as_json) -> None:
    """Draft a paper section (abstract, introduction, related-work, methods, results, discussion,
    conclusion) grounded in the lab's papers, with citations chosen and checked by labmate.

    \b
    labmate draft related-work --topic "protein language models" --k 6
    labmate draft introduction --topic "vitamin D and fractures" --papers 4983,11716783
    labmate draft results --metrics runs/ner-7/metrics.json --json
    """
    from core.errors import UserError
    from drafting.generator import make_generator
    from drafting.pipeline import draft as write_draft
    from drafting.sections import parse_section
    from drafting.types import DraftRequest

    spec = parse_section(section)  # unknown sections fail before any model loads
    settings = settings_of(ctx)
    ids = [p.strip() for p in papers.split(",") if p.strip()]
    request = DraftRequest(spec.name, topic, papers=ids, k=k)
    if metrics is not None:
        if spec.name != "results":
            raise UserError("--metrics belongs to the results section: `labmate draft results --metrics FILE`.")
        from drafting.metrics import load_metrics

        request.metrics = load_metrics(metrics)
    library = None if request.metrics is not None else library_of(ctx)
    live = None if as_json or not sys.stderr.isatty() else _Live()
    result = write_draft(request, library=library, generator=make_generator(settings.drafting),
                         settings=settings.drafting, on_update=live)
    if live:
        live.clear()
    if as_json:
        click.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
    else:
        click.echo(result.markdown())
        for warning in result.warnings:
            click.echo(f"warning: {warning}", err=True)
    if out:  # after printing, so a bad --out path never costs the draft itself
        _write_files(out, result)


def _write_files(base: Path, result) -> None:
    from core.errors import UserError

    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        base.with_name(base.name + ".md").write_text(result.markdown(), encoding="utf-8")
        base.with_name(base.name + ".bib").write_text(result.bibtex, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"Could not write {base}.md/.bib ({exc}); the draft is printed above. "
                        "Pass --out a writable path.") from None


class _Live:
    """Shows the draft's last line growing on stderr while the model writes (terminals only)."""

    def __init__(self) -> None:
        self.width = 100

    def __call__(self, text: str) -> None:
        tail = " ".join(text.split())[-self.width:]
        click.echo("\r" + tail.ljust(self.width), nl=False, err=True)

    def clear(self) -> None:
        click.echo("\r" + " " * self.width + "\r", nl=False, err=True)
