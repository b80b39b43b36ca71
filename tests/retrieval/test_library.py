"""Ingest, dedup, search and filters on a real index (real embedder, FAISS, SQLite, BM25)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.errors import NotFoundError, QueryError
from retrieval.cite import cite
from retrieval.ingest import add_paths, add_records, remove_papers
from retrieval.records import PaperRecord
from retrieval.search import Filters, more_like, parse_years, search


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


NATIVE = [
    {"id": "photo", "title": "Photosynthesis in cyanobacteria under high light", "year": 2019,
     "authors": ["Ana Ortiz", "Bo Li"], "venue": "Plant Cell", "doi": "10.1/photo",
     "abstract": "Cyanobacteria regulate photosystem II repair when light intensity is high."},
    {"id": "lm", "title": "Scaling transformer language models", "year": 2021, "authors": ["Cara Diaz"],
     "venue": "NeurIPS", "abstract": "Larger transformer language models trained on more tokens predict text better."},
    {"id": "ice", "title": "Glacier melt and sea level rise", "year": 2015, "authors": ["Dan Berg"],
     "abstract": "Greenland glaciers lose ice mass faster as ocean temperatures increase."},
]


def test_scifact_sample_is_searchable_and_reingest_changes_nothing(open_library, scifact_sample):
    library = open_library()
    report = add_paths(library, [scifact_sample])
    assert len(report.added) == 120 and not report.problems
    first = json.loads(scifact_sample.read_text().splitlines()[5])
    hits = search(library, first["title"], k=5)
    assert hits[0].id == first["_id"] and hits[0].title == first["title"]
    assert hits[0].score >= hits[-1].score and hits[0].snippet
    before = library.stats()
    again = add_paths(library, [scifact_sample])
    assert again.added == [] and len(again.unchanged) == 120 and again.passages == 0
    after = library.stats()
    assert (after["papers"], after["passages"]) == (before["papers"], before["passages"])


def test_duplicates_merge_by_doi_arxiv_and_title_year(open_library, tmp_path):
    library = open_library()
    bib = tmp_path / "lab.bib"
    bib.write_text("@article{ortiz2019, title={Photosynthesis in Cyanobacteria Under High Light},"
                   " author={Ortiz, Ana and Li, Bo}, year={2019}, doi={10.1/PHOTO}}\n"
                   "@article{other2015, title={Glacier melt and sea-level rise}, year={2015}}\n"
                   "@article{arx, title={Some preprint}, eprint={2101.00001}, archivePrefix={arXiv}, year={2021}}\n")
    add_paths(library, [write_jsonl(tmp_path / "n.jsonl", NATIVE)])
    report = add_paths(library, [bib, write_jsonl(tmp_path / "a.jsonl", [
        {"id": "arx-copy", "title": "A preprint with another title", "url": "https://arxiv.org/abs/2101.00001v2"}])])
    assert sorted(report.merged) == ["arx-copy -> arx", "ortiz2019 -> photo", "other2015 -> ice"]
    assert library.stats()["papers"] == 4
    # Aliases find the merged paper; the .bib entry is used for citing it.
    assert library.store.resolve_id("ortiz2019") == "photo"
    assert cite(library.store, ["ortiz2019"]).startswith("@article{ortiz2019")


def test_distinct_ids_in_one_file_never_merge(open_library, tmp_path):
    library = open_library()
    same = {"title": "Identical title", "year": 2020, "abstract": "Same words."}
    report = add_paths(library, [write_jsonl(tmp_path / "d.jsonl", [{"id": "a", **same}, {"id": "b", **same}])])
    assert sorted(report.added) == ["a", "b"] and library.stats()["papers"] == 2


def test_records_without_ids_get_stable_generated_keys(open_library):
    library = open_library()
    rec = PaperRecord(title="The attention mechanism", authors=["Ada Byron"], year=2017, origin="x.pdf",
                      abstract="Attention is useful.")
    other = PaperRecord(title="The attention revisited", authors=["Ada Byron"], year=2017, origin="y.pdf")
    report = add_records(library, [rec, other])
    assert report.added == ["byron2017attention", "byron2017attentionb"]
    assert add_records(library, [rec]).unchanged == ["byron2017attention"]


def test_changed_record_from_same_file_is_updated(open_library, tmp_path):
    library = open_library()
    path = write_jsonl(tmp_path / "n.jsonl", NATIVE)
    add_paths(library, [path])
    edited = [dict(NATIVE[0], abstract="Now about nitrogen fixation in heterocysts."), *NATIVE[1:]]
    report = add_paths(library, [write_jsonl(path, edited)])
    assert report.added == ["photo"] and len(report.unchanged) == 2
    assert search(library, "nitrogen fixation heterocysts", k=1)[0].id == "photo"
    assert library.stats()["passages"] == 3  # the old passage was replaced, not kept beside


def test_filters_year_author_collection(open_library, tmp_path):
    library = open_library()
    add_paths(library, [write_jsonl(tmp_path / "n.jsonl", NATIVE[:2])], collection="bio")
    add_paths(library, [write_jsonl(tmp_path / "m.jsonl", NATIVE[2:])], collection="climate")
    query = "cyanobacteria language models glaciers"
    assert {h.id for h in search(library, query, filters=Filters(years=(2018, 2020)))} == {"photo"}
    assert {h.id for h in search(library, query, filters=Filters(author="diaz"))} == {"lm"}
    assert {h.id for h in search(library, query, filters=Filters(collection="climate"))} == {"ice"}
    assert search(library, query, filters=Filters(years=(1900, 1901))) == []
    assert parse_years("2019-") == (2019, 9999) and parse_years("2021") == (2021, 2021)
    with pytest.raises(QueryError, match="backwards"):
        parse_years("2023-2019")
    with pytest.raises(QueryError):
        search(library, "   ")


def test_more_like_this_and_remove(open_library, tmp_path):
    library = open_library()
    records = NATIVE + [{"id": "photo2", "title": "Light stress and photosystem repair in Synechocystis",
                         "abstract": "High light damages photosystem II in cyanobacteria; repair cycles respond."}]
    add_paths(library, [write_jsonl(tmp_path / "n.jsonl", records)])
    similar = more_like(library, "photo", k=2)
    assert similar[0].id == "photo2" and "photo" not in {h.id for h in similar}
    assert remove_papers(library, ["photo2"]) == ["photo2"]
    assert "photo2" not in {h.id for h in search(library, "photosystem repair", k=5)}
    with pytest.raises(NotFoundError):
        remove_papers(library, ["nope"])
    with pytest.raises(NotFoundError):
        more_like(library, "photo2")


def test_pdf_and_bib_ingest_with_pages(open_library, data_dir):
    library = open_library()
    report = add_paths(library, [data_dir / "pdfs" / "N18-3011.pdf"])
    assert len(report.added) == 1
    hit = search(library, "literature graph entity linking", k=1)[0]
    assert "Literature Graph" in hit.title and hit.year == 2018
    pages = library.store.conn.execute("SELECT DISTINCT page FROM passages WHERE kind='body'").fetchall()
    assert sorted(p[0] for p in pages)[:3] == [1, 2, 3]
    assert cite(library.store, [hit.id]).startswith("@inproceedings{")


def test_vectors_match_stored_embeddings(open_library, tmp_path, embedder):
    library = open_library()
    add_paths(library, [write_jsonl(tmp_path / "n.jsonl", NATIVE)])
    row = library.store.conn.execute("SELECT p.vector, a.title, p.text FROM passages p JOIN papers a "
                                     "ON a.id=p.paper_id WHERE a.id='ice'").fetchone()
    stored = np.frombuffer(row[0], dtype=np.float32)
    fresh = embedder.encode([f"{row[1]}. {row[2]}"])[0]
    assert np.allclose(stored, fresh, atol=1e-4)
