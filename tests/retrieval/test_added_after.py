"""`Filters.added_after`: only papers added to the library after a moment (what paper digests
search), on a real library, ingested in two rounds through the real pipeline."""

from __future__ import annotations

import json
import time

from retrieval.ingest import add_paths
from retrieval.search import Filters, best_similarity, more_like, search

OLD = [
    {"id": "photo", "title": "Photosynthesis in cyanobacteria under high light", "year": 2019,
     "authors": ["Ana Ortiz"], "abstract": "Cyanobacteria repair photosystem II quickly when light is intense."},
    {"id": "ice", "title": "Glacier melt and sea level rise", "year": 2015, "authors": ["Dan Berg"],
     "abstract": "Greenland glaciers lose ice mass faster as ocean temperatures increase."},
]
NEW = [
    {"id": "leaf", "title": "Light harvesting in plant photosynthesis", "year": 2022, "authors": ["Li Wei"],
     "abstract": "Plant antenna complexes dissipate excess light energy as heat to protect photosynthesis."},
    {"id": "algae", "title": "Photosynthetic efficiency of green algae", "year": 2018, "authors": ["Mo Tan"],
     "abstract": "Green algae convert light to biomass with a photosynthetic efficiency near eight percent."},
]


def newest_added(library) -> float:
    return library.store.newest_added()


def test_added_after_keeps_only_papers_added_later(library_of, tmp_path):
    library = library_of(OLD)
    cutoff = newest_added(library)
    time.sleep(0.01)
    later = tmp_path / "later.jsonl"
    later.write_text("".join(json.dumps(r) + "\n" for r in NEW))
    add_paths(library, [later])
    query = "photosynthesis under light"

    assert {h.id for h in search(library, query)} >= {"photo", "leaf", "algae"}
    new = search(library, query, filters=Filters(added_after=cutoff))
    assert {h.id for h in new} == {"leaf", "algae"}
    assert all(h.score >= 0 for h in new)
    # Combined with the other filters, and on more-like-this too.
    assert [h.id for h in search(library, query, filters=Filters(years=(2020, 2030), added_after=cutoff))] == ["leaf"]
    assert {h.id for h in more_like(library, "photo", filters=Filters(added_after=cutoff))} <= {"leaf", "algae"}
    # Nothing added after the newest paper; None (the default) is no filter at all.
    assert search(library, query, filters=Filters(added_after=newest_added(library))) == []
    assert not Filters().active() and Filters(added_after=0.0).active()
    assert {h.id for h in search(library, query, filters=Filters(added_after=0.0))} == \
        {h.id for h in search(library, query)}


def test_re_adding_an_old_paper_does_not_make_it_new(library_of, tmp_path):
    library = library_of(OLD)
    cutoff = newest_added(library)
    time.sleep(0.01)
    again = tmp_path / "again.jsonl"
    changed = dict(OLD[0], abstract=OLD[0]["abstract"] + " Repair slows in the dark.")
    again.write_text(json.dumps(changed) + "\n" + json.dumps(NEW[0]) + "\n")
    add_paths(library, [again])
    assert {h.id for h in search(library, "photosynthesis light", filters=Filters(added_after=cutoff))} == {"leaf"}


def test_best_similarity_is_absolute_and_leaves_out_papers_added_later(library_of, tmp_path):
    library = library_of(OLD)
    cutoff = newest_added(library)
    time.sleep(0.01)
    later = tmp_path / "later.jsonl"
    later.write_text(json.dumps(NEW[0]) + "\n")
    add_paths(library, [later])
    scores = best_similarity(library, "photosynthesis under intense light", ["photo", "ice", "leaf"])
    assert scores["photo"] > 0.35 > scores["ice"] and -1.0 <= scores["ice"] and scores["leaf"] > 0.35
    assert set(best_similarity(library, "photosynthesis", ["photo", "leaf"], added_until=cutoff)) == {"photo"}
    assert best_similarity(library, "anything", []) == {}
