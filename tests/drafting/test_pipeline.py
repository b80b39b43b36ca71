"""The drafting pipeline on a real library (real embedder, FAISS, SQLite) with a model that
misbehaves on purpose, and (slow) with the real default model on SciFact abstracts."""

from __future__ import annotations

import re
import time

import pytest

from core.errors import NotFoundError, UserError
from drafting.evidence import NothingRetrievedError, bibtex_key
from drafting.pipeline import draft, plan
from drafting.references import citation_errors
from drafting.sections import SECTIONS
from drafting.types import DraftRequest
from retrieval.ingest import add_paths
from tests.drafting.fakes import ScriptedGenerator

PAPERS = [
    {"id": "aspirin-trial", "title": "Aspirin and colorectal adenomas", "year": 2003, "authors": ["Robert Sandler"],
     "abstract": "In a randomized trial of 635 patients, daily aspirin reduced the risk of colorectal adenomas. "
                 "The effect was seen within three years of treatment."},
    {"id": "aspirin-capp2", "title": "Aspirin in carriers of hereditary colorectal cancer", "year": 2011,
     "authors": ["John Burn", "Anne-Marie Gerdes"],
     "abstract": "Long-term aspirin use lowered colorectal cancer incidence in Lynch syndrome carriers. "
                 "We followed 861 carriers for a mean of 56 months."},
    {"id": "aspirin-bleeding", "title": "Gastrointestinal bleeding with low-dose aspirin", "year": 2015,
     "authors": ["Mina Park"],
     "abstract": "Low-dose aspirin increased the risk of major gastrointestinal bleeding in older adults. "
                 "Bleeding was more frequent in patients taking anticoagulants."},
    {"id": "glacier", "title": "Glacier melt and sea level rise", "year": 2015, "authors": ["Dan Berg"],
     "abstract": "Greenland glaciers lose ice mass faster as ocean temperatures increase."},
]


def Scripted(reply):
    """A scripted model whose `reply(prompt, n)` also gets the source number it was asked to cite."""
    return ScriptedGenerator(lambda prompt: reply(prompt, asked(prompt)))


def asked(prompt: str) -> int | None:
    found = re.findall(r"end the sentence with \[(\d+)\]", prompt, re.I)
    return int(found[0]) if found else None


def evidence_of(prompt: str) -> str:
    return re.search(r"Evidence \[\d+\]: [^.]*\. ([^.]*\.)", prompt).group(1)


def faithful(prompt, n):
    """Restates the first key sentence and cites what it was asked to."""
    return f"{evidence_of(prompt)[:-1]} [{n}].\nSecond sentence." if n else "Aspirin affects colorectal adenomas and gastrointestinal bleeding risk."


@pytest.fixture
def library(library_of):
    return library_of(PAPERS)


def test_faithful_model_keeps_its_sentences_and_the_system_cites(library):
    updates = []
    result = draft(DraftRequest("related-work", "aspirin and colorectal cancer", k=3), library=library,
                   generator=Scripted(faithful), on_update=updates.append)
    assert result.stats["fallbacks"] == 0 and result.stats["sentences"] == 3
    assert citation_errors(result, all_cited=True) == []
    assert {c.id for c in result.citations} >= {"aspirin-trial", "aspirin-capp2"}
    assert "glacier" not in {c.id for c in result.citations}  # retrieval picked the topic's papers
    assert "Second sentence" not in result.text  # one sentence per point
    assert updates and updates[-1] == result.text  # the last live update is the final text
    assert all(len(a) <= len(b) for a, b in zip(updates, updates[1:]))  # it only grows
    assert sorted(bibtex_key(e) for e in result.bibtex.split("\n\n") if e.strip()) == \
        sorted(c.key for c in result.citations)


def test_invented_and_misplaced_citations_are_removed_and_reported(library):
    def cites_wrongly(prompt, n):
        return f"{evidence_of(prompt)[:-1]} [{n}, 7] [{n % 3 + 1}]."

    result = draft(DraftRequest("related-work", "aspirin and colorectal cancer", k=3), library=library,
                   generator=Scripted(cites_wrongly))
    assert citation_errors(result, all_cited=True) == []
    assert set(int(x) for x in re.findall(r"\d+", " ".join(re.findall(r"\[[^\]]*\]", result.text)))) <= {1, 2, 3}
    assert any("[7]" in w and "only 3 sources" in w for w in result.warnings)
    assert any("written from source" in w for w in result.warnings)
    assert result.stats["removed_citations"] == 6
    # Each sentence carries exactly one citation: the source it was written from.
    assert all(len(re.findall(r"\[\d+\]", s)) == 1 for s in re.split(r"(?<=\.)\s+", result.text))


@pytest.mark.parametrize("bad", [
    "As an AI language model, I cannot summarize this study for you [{n}].",
    "Smith et al. showed that aspirin reduced adenomas in a randomized trial [{n}].",
    "Aspirin reduced colorectal adenomas by 87% in 12,000 patients in a randomized trial [{n}].",
    "Aspirin increased the risk of colorectal adenomas in a randomized trial of patients [{n}].",
    "Published in the Lancet Journal, the famous Boston trial of aspirin proved everything [{n}].",
    "Quantum chromodynamics predicts gluon confinement at low energies in lattice simulations [{n}].",
    "Aspirin reduced the risk of colorectal adenomas in patients with",
    "Aspirin.",
    "The evidence found in [{n}] is a crucial finding in colorectal adenoma and aspirin research.",
])
def test_sentences_failing_a_check_fall_back_to_the_source_cited(library, bad):
    result = draft(DraftRequest("related-work", "aspirin colorectal adenomas", papers=["aspirin-trial"]),
                   library=library, generator=Scripted(lambda prompt, n: bad.format(n=n)))
    assert result.stats["fallbacks"] == 1
    # The source's own key sentence, cited, stands in for the model's.
    assert result.text == "In a randomized trial of 635 patients, daily aspirin reduced the risk of " \
        "colorectal adenomas [1]."
    assert citation_errors(result, all_cited=True) == []


def test_labels_small_models_put_first_are_dropped(library):
    def labelled(prompt, n):
        return f"Evidence [{n}]: {evidence_of(prompt)[:-1]} [{n}]."

    result = draft(DraftRequest("related-work", "aspirin colorectal adenomas", papers=["aspirin-trial"]),
                   library=library, generator=Scripted(labelled))
    assert result.stats["fallbacks"] == 0
    assert result.text.startswith("Sandler found that in a randomized trial of 635 patients")


def test_fallback_attributes_we_sentences_to_the_authors(library):
    result = draft(DraftRequest("related-work", "carriers followed for months", papers=["aspirin-capp2"]),
                   library=library, generator=Scripted(lambda prompt, n: "I am sorry."))
    assert result.text == "Burn and Gerdes followed 861 carriers for a mean of 56 months [1]."


def test_named_papers_are_the_sources_in_the_order_given(library):
    result = draft(DraftRequest("introduction", "aspirin", papers=["aspirin-bleeding", "aspirin-trial"]),
                   library=library, generator=Scripted(faithful))
    assert [c.id for c in result.citations] == ["aspirin-bleeding", "aspirin-trial"]
    assert result.text.startswith("Aspirin affects colorectal adenomas and gastrointestinal bleeding risk.")  # the opening cites nothing
    assert result.references.splitlines()[0].startswith("[1] Mina Park (2015). Gastrointestinal bleeding")


def test_opening_that_cites_or_counts_is_replaced(library):
    def reply(prompt, n):
        return faithful(prompt, n) if n else "Aspirin is taken by 40% of adults [5]."

    result = draft(DraftRequest("introduction", "aspirin", papers=["aspirin-trial"]), library=library,
                   generator=Scripted(reply))
    assert result.text.startswith("This section reviews what the literature reports on aspirin.")
    assert any("[5]" in w for w in result.warnings)
    assert citation_errors(result) == []


def test_plans_follow_the_section():
    sources = list(range(7))
    assert [p.kind for p in plan(SECTIONS["related-work"], sources)[0]] == ["source"] * 3
    intro = plan(SECTIONS["introduction"], sources)
    assert intro[0][0].kind == "opening" and intro[-1][-1].kind == "closing"
    assert sum(len(p) for p in intro) == 9


def test_bad_requests_get_clear_errors(tmp_path, library, embedder):
    from retrieval.library import Library
    from retrieval.settings import IndexSettings

    gen = Scripted(faithful)
    with pytest.raises(UserError, match="Unknown section 'summary'.*related-work"):
        draft(DraftRequest("summary", "aspirin"), library=library, generator=gen)
    with pytest.raises(UserError, match="Say what the related work is about"):
        draft(DraftRequest("related-work", "  "), library=library, generator=gen)
    with pytest.raises(NotFoundError, match="nope"):
        draft(DraftRequest("related-work", "aspirin", papers=["nope"]), library=library, generator=gen)
    empty = Library.open(IndexSettings(dir=tmp_path / "empty"), embedder)
    with pytest.raises(NothingRetrievedError, match="labmate index add"):
        draft(DraftRequest("related-work", "aspirin"), library=empty, generator=gen)
    empty.close()
    assert gen.prompts == []  # nothing reached the model


def test_bibtex_keys_come_from_the_original_entries(data_dir, open_library, tmp_path):
    lib = open_library()
    add_paths(lib, [data_dir / "bibtex" / "d2l.bib"])
    result = draft(DraftRequest("related-work", "residual networks for image recognition", k=3), library=lib,
                   generator=Scripted(lambda prompt, n: "Nothing useful here."))
    assert citation_errors(result, all_cited=True) == []
    entries = [e for e in re.split(r"\n(?=@)", result.bibtex) if e.strip()]
    assert [bibtex_key(e) for e in entries] == [c.key for c in result.citations]
    assert "He.Zhang.Ren.ea.2016" in [c.key for c in result.citations]  # the .bib file's own key
    for citation in result.citations:
        assert f"BibTeX: {citation.key}" in result.references


# -- the real default model ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def scifact_library(scifact_sample, embedder, tmp_path_factory):
    from retrieval.library import Library
    from retrieval.settings import IndexSettings

    lib = Library.open(IndexSettings(dir=tmp_path_factory.mktemp("scifact-idx")), embedder)
    add_paths(lib, [scifact_sample])
    yield lib
    lib.close()


@pytest.mark.slow
@pytest.mark.parametrize("section", ["related-work", "introduction"])
def test_real_model_drafts_are_correctly_cited(scifact_library, generator, section):
    updates: list[tuple[float, str]] = []
    result = draft(DraftRequest(section, "vitamin D and bone health", k=3), library=scifact_library,
                   generator=generator, on_update=lambda text: updates.append((time.perf_counter(), text)))
    assert citation_errors(result, all_cited=section == "related-work") == []
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", result.text)}
    assert cited == set(range(1, len(result.citations) + 1)) and len(result.citations) == 3
    assert result.stats["tokens"] > 20 and len(updates) > 10  # it streamed
    assert len(result.text.split()) > 40


def test_a_draft_through_an_openai_compatible_server(library):
    """The whole pipeline over HTTP: a vLLM-like server streams, our checks still decide."""
    from drafting.generator import make_generator
    from drafting.settings import DraftingSettings
    from tests.drafting.fake_llm_server import FakeLLMServer

    def reply(messages):
        prompt = messages[-1]["content"]
        asked = re.findall(r"end the sentence with \[(\d+)\]", prompt, re.I)
        return f"{evidence_of(prompt)[:-1]} [{asked[0]}] [9].\nMore text." if asked else "Off topic."

    with FakeLLMServer(reply, api_key="sk-lab", delay=0.001) as server:
        settings = DraftingSettings(backend="openai", url=server.url, model="fake")
        generator = make_generator(settings, env={"LABMATE_LLM_API_KEY": "sk-lab"})
        updates = []
        result = draft(DraftRequest("related-work", "aspirin colorectal", k=2), library=library,
                       generator=generator, settings=settings, on_update=updates.append)
    assert citation_errors(result, all_cited=True) == []
    assert result.stats["fallbacks"] == 0 and result.stats["removed_citations"] == 2
    assert len(updates) > 10 and "More text" not in result.text  # streamed, cut at the newline
    assert all(body["stream"] and body["stop"] == ["\n"] for body in server.requests)
