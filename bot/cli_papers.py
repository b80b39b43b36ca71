"""`labmate papers` (search) and `labmate cite` (BibTeX)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bot.cli import library_of, main


@main.command()
@click.argument("query", required=False)
@click.option("-k", "k", type=click.IntRange(1, 1000), help="How many papers (default from config).")
@click.option("--year", help="Year or range: 2021, 2019-2023, 2019-, -2020.")
@click.option("--author", help="Only papers with an author name containing this text.")
@click.option("--collection", help="Only papers in this collection.")
@click.option("--like", "like", metavar="ID", help="Papers similar to this paper (\"more like this\").")
@click.option("--batch", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="BEIR queries JSONL (_id, text); prints one JSON line per query.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.pass_context
def papers(ctx, query, k, year, author, collection, like, batch, as_json) -> None:
    """Search the lab's papers (hybrid dense + BM25)."""
    from bot.router import PapersRequest, run_papers
    from retrieval.search import Filters, parse_years

    if not (query or like or batch):
        raise click.UsageError('Give a query, e.g. `labmate papers "protein folding" -k 5`, or --like ID.')
    request = PapersRequest(query=query or "", k=k, years=parse_years(year) if year else None,
                            author=author, collection=collection, like=like)
    library = library_of(ctx)
    if batch:
        _batch(library, batch, k or 100, Filters(request.years, author, collection))
        return
    hits = run_papers(library, request)  # the same code path as Slack's /papers
    if as_json:
        click.echo(json.dumps({"query": query or f"like:{like}",
                               "results": [_public(h.to_dict()) for h in hits]}, ensure_ascii=False))
    else:
        click.echo(render_hits(hits) if hits else "No papers match; try fewer words or looser filters.")


def _public(hit: dict) -> dict:
    keys = ("id", "title", "authors", "year", "venue", "url", "snippet", "score")
    return {key: hit[key] for key in keys} | ({"page": hit["page"]} if hit.get("page") else {})


def _batch(library, path: Path, k: int, filters) -> None:
    """Evaluation mode: queries are embedded together, then searched one by one."""
    from core.errors import UserError
    from retrieval.search import search

    queries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                obj = json.loads(line)
                queries.append((str(obj["_id"]), str(obj["text"])))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise UserError(f"{path}: line {number} is not a BEIR query ({{\"_id\", \"text\"}}).") from None
    vectors = library.embedder.encode([text for _, text in queries])
    for (qid, text), vector in zip(queries, vectors):
        hits = search(library, text, k, filters, query_vector=vector)
        click.echo(json.dumps({"query_id": qid, "results": [{"id": h.id, "score": h.score} for h in hits]}))


def render_hits(hits) -> str:
    """Plain-text results for the terminal."""
    lines = []
    for n, hit in enumerate(hits, start=1):
        authors = ", ".join(hit.authors[:3]) + (" et al." if len(hit.authors) > 3 else "")
        meta = " · ".join(str(x) for x in (authors, hit.year, hit.venue) if x)
        lines.append(f"{n}. {hit.title}  [{hit.id}]  score {hit.score:.3f}")
        if meta:
            lines.append(f"   {meta}")
        page = f" (p. {hit.page})" if hit.page else ""
        lines.append(f"   {hit.snippet}{page}")
        if hit.url:
            lines.append(f"   {hit.url}")
    return "\n".join(lines)


@main.command()
@click.argument("ids", nargs=-1, required=True)
@click.pass_context
def cite(ctx, ids: tuple[str, ...]) -> None:
    """Print BibTeX for papers (the original entry when they came from a .bib file)."""
    from retrieval.cite import cite as cite_papers

    click.echo(cite_papers(library_of(ctx).store, list(ids)))
