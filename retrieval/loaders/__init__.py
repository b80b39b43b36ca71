"""Readers for the formats labs keep: BibTeX, PDF, JSONL/JSON (BEIR or native) and CSV.

Every loader is `load(path) -> LoadResult`: the good records, and a `Problem` for each entry,
line or file it had to skip. A loader never raises for bad content, so one broken entry never
stops a batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from retrieval.records import PaperRecord, Problem


@dataclass
class LoadResult:
    """What one file yielded."""

    records: list[PaperRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _loaders() -> dict[str, Callable[[Path], LoadResult]]:
    # Imported here so that reading one format never pays for another's parser.
    from retrieval.loaders import bibtex, pdf, tabular

    return {
        ".bib": bibtex.load,
        ".pdf": pdf.load,
        ".jsonl": tabular.load_jsonl,
        ".json": tabular.load_json,
        ".csv": tabular.load_csv,
    }


SUPPORTED = (".bib", ".pdf", ".jsonl", ".json", ".csv")


def find_files(paths: list[Path]) -> tuple[list[Path], list[Problem]]:
    """Expand folders recursively into supported files; report paths that are missing or unsupported."""
    files: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED))
        elif not path.exists():
            problems.append(Problem(str(path), "", "no such file or folder"))
        elif path.suffix.lower() not in SUPPORTED:
            problems.append(Problem(str(path), "", f"unsupported file type; use one of {', '.join(SUPPORTED)}"))
        else:
            files.append(path)
    return files, problems


def load_file(path: Path) -> LoadResult:
    """Read one file with the loader for its extension; unreadable files become a Problem."""
    loader = _loaders().get(path.suffix.lower())
    if loader is None:
        return LoadResult(problems=[Problem(str(path), "", "unsupported file type")])
    try:
        return loader(path)
    except (OSError, UnicodeDecodeError) as exc:
        return LoadResult(problems=[Problem(str(path), "", f"cannot read file: {exc}")])
