"""The PDF loader on real papers (metadata and first-page fallbacks) and on broken or image-only files."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from retrieval.loaders import pdf
from retrieval.loaders.pdf import load

from tests.conftest import DATA

PDFS = DATA / "pdfs"
pytestmark = pytest.mark.skipif(not PDFS.is_dir(), reason="shared PDF fixtures are not on this machine")

# file, title words, first author's last name, year, abstract start, pages, (phrase, its page), venue part
PAPERS = [
    ("N18-3011.pdf", ["literature graph", "semantic scholar"], "Ammar", 2018, "We describe a deployed scalable system",
     8, ("many papers are provided with incomplete metadata", 3), "NAACL-HLT 2018"),
    ("2020.acl-main.207.pdf", ["specter", "document-level representation"], "Cohan", 2020,
     "Representation learning is a critical ingredient", 13,
     ("We use SciBERT as our model initialization", 3), "Association for Computational Linguistics"),
    ("2304.02623v1.pdf", ["beyond summarization", "expository writing"], "Shen", 2023,
     "Large language models have introduced exciting", 4, ("establishing the working memory", 3), "arXiv"),
]
IDS = [paper[0] for paper in PAPERS]


@pytest.fixture(scope="module")
def loaded() -> dict[str, object]:
    """Each real PDF read once: extraction is the slow part of these tests."""
    return {name: load(PDFS / name) for name in [*IDS, "1903.10676.pdf"]}


def _only_record(result):
    assert result.problems == []
    assert len(result.records) == 1
    return result.records[0]


@pytest.mark.parametrize("paper", PAPERS, ids=IDS)
def test_real_paper_fields(loaded, paper):
    name, title_words, last_name, year, abstract_start, _, _, venue = paper
    record = _only_record(loaded[name])
    assert all(word in record.title.lower() for word in title_words)
    assert record.authors[0].split()[-1] == last_name
    assert record.year == year
    assert record.abstract.startswith(abstract_start)
    assert len(record.abstract.split()) > 60
    assert venue in record.venue
    assert record.id is None and record.origin == str(PDFS / name) and record.where == ""


@pytest.mark.parametrize("paper", PAPERS, ids=IDS)
def test_body_passages_keep_their_pages(loaded, paper):
    name, _, _, _, abstract_start, pages, (phrase, page), _ = paper
    body = _only_record(loaded[name]).body
    assert {p.page for p in body} == set(range(1, pages + 1))
    assert all(p.kind == "body" and p.text == " ".join(p.text.split()) for p in body)
    assert [p.page for p in body] == sorted(p.page for p in body)
    assert [p.page for p in body if phrase in p.text] == [page]
    sizes = sorted(len(p.text.split()) for p in body)
    assert sizes[-1] <= 230 and 110 <= sizes[len(sizes) // 2] <= 180
    # The abstract is stored on its own, not repeated as a page-1 passage.
    assert not any(abstract_start in p.text for p in body)


def test_line_break_hyphens_are_joined(loaded):
    record = _only_record(loaded["N18-3011.pdf"])
    assert "scientific literature into a heterogeneous graph" in record.abstract  # "litera-\nture", "ﬁ" ligature
    assert any("notable advances in scientific search engines" in p.text for p in record.body)


def test_arxiv_paper_gets_id_and_url(loaded):
    record = _only_record(loaded["2304.02623v1.pdf"])
    assert record.arxiv == "2304.02623"
    assert record.url == "https://arxiv.org/abs/2304.02623"
    assert [a.split()[-1] for a in record.authors][-1] == "Sontag"


def test_anthology_papers_have_no_arxiv_id(loaded):
    for name in ("N18-3011.pdf", "2020.acl-main.207.pdf"):
        record = _only_record(loaded[name])
        assert record.arxiv is None and record.url is None


def test_one_page_table_excerpt_still_loads(loaded):
    record = _only_record(loaded["1903.10676.pdf"])
    assert record.title  # no large-font title on a page of tables; only a non-empty fallback
    assert record.body and {p.page for p in record.body} == {1}
    assert "SciCite" in " ".join(p.text for p in record.body)
    assert record.arxiv == "1903.10676" and record.year == 2019


def _with_junk_metadata(source: Path, target: Path, extra: dict[str, str] | None = None) -> Path:
    writer = PdfWriter(clone_from=source)
    junk = {"/Title": "Microsoft Word - doc1.docx", "/Author": "", "/Subject": ""}
    junk["/CreationDate"] = "D:20240102030405Z"  # a file date that must lose to the printed year
    writer.add_metadata({**junk, **(extra or {})})
    writer.write(target)
    return target


@pytest.mark.parametrize(
    ("name", "title", "authors"),
    [
        ("N18-3011.pdf", "Construction of the Literature Graph in Semantic Scholar",
         ["Waleed Ammar", "Lucy Lu Wang", "Madeleine van Zuylen", "Oren Etzioni"]),
        ("2020.acl-main.207.pdf", "SPECTER: Document-level Representation Learning using Citation-informed Transformers",
         ["Arman Cohan", "Sergey Feldman", "Iz Beltagy", "Doug Downey", "Daniel S. Weld"]),
        ("2304.02623v1.pdf", "Beyond Summarization: Designing AI Support for Real-World Expository Writing Tasks",
         ["Zejiang Shen", "Joseph Chee Chang", "David Sontag"]),
    ],
    ids=IDS,
)
def test_junk_metadata_falls_back_to_first_page(tmp_path, name, title, authors):
    # "paper.pdf" hides the arXiv id in the file name, so the margin stamp on page 1 must provide it.
    record = _only_record(load(_with_junk_metadata(PDFS / name, tmp_path / "paper.pdf")))
    assert record.title == title
    assert all(author in record.authors for author in authors)
    assert not any("@" in a or "University" in a or "Institute" in a for a in record.authors)
    assert record.year == next(p[3] for p in PAPERS if p[0] == name)  # the printed year, not the 2024 file date
    assert record.abstract.startswith(next(p[4] for p in PAPERS if p[0] == name))


def test_arxiv_stamp_on_page_one_gives_id(tmp_path):
    record = _only_record(load(_with_junk_metadata(PDFS / "2304.02623v1.pdf", tmp_path / "paper.pdf")))
    assert record.arxiv == "2304.02623" and record.venue == "arXiv"


def test_doi_in_metadata_gives_doi_url(tmp_path):
    extra = {"/Subject": "doi:10.18653/v1/2020.acl-main.207"}
    path = _with_junk_metadata(PDFS / "2020.acl-main.207.pdf", tmp_path / "specter.pdf", extra)
    record = _only_record(load(path))
    assert record.doi == "10.18653/v1/2020.acl-main.207"
    assert record.url == "https://doi.org/10.18653/v1/2020.acl-main.207"


def _assert_one_problem(result, path: Path, *words: str):
    assert result.records == []
    assert len(result.problems) == 1
    problem = result.problems[0]
    assert problem.file == str(path)
    assert all(word.lower() in problem.reason.lower() for word in words)


def test_truncated_pdf_is_a_problem(tmp_path):
    path = tmp_path / "truncated.pdf"
    path.write_bytes((PDFS / "N18-3011.pdf").read_bytes()[:2000])
    _assert_one_problem(load(path), path, "not a readable pdf")


def test_random_bytes_are_a_problem(tmp_path):
    path = tmp_path / "x.pdf"
    path.write_bytes(random.Random(0).randbytes(5000))
    _assert_one_problem(load(path), path, "not a readable pdf")


def test_empty_file_is_a_problem(tmp_path):
    path = tmp_path / "empty.pdf"
    path.write_bytes(b"")
    _assert_one_problem(load(path), path)


def test_pdf_without_text_asks_for_ocr(tmp_path):
    path = tmp_path / "scan.pdf"
    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    writer.add_blank_page(width=612, height=792)
    writer.write(path)
    _assert_one_problem(load(path), path, "OCR")


def test_encrypted_pdf_is_a_problem(tmp_path):
    path = tmp_path / "locked.pdf"
    writer = PdfWriter(clone_from=PdfReader(PDFS / "2304.02623v1.pdf"))
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    writer.write(path)
    _assert_one_problem(load(path), path, "encrypted")


def test_pdf_locked_only_for_editing_still_loads(tmp_path):
    path = tmp_path / "owner-only.pdf"
    writer = PdfWriter(clone_from=PdfReader(PDFS / "2304.02623v1.pdf"))
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    writer.write(path)
    assert "expository writing" in _only_record(load(path)).title.lower()


def test_helpers_for_years_authors_and_chunks():
    assert pdf._arxiv_year("2304.02623") == 2023 and pdf._arxiv_year("hep-th/9901001") == 1999
    assert pdf._arxiv_year(None) is None
    assert pdf._meta_authors("Ammar, Waleed; lo, kyle") == ["Waleed Ammar", "Kyle Lo"]
    assert pdf._meta_authors("jsmith") == [] and pdf._meta_authors("") == []
    assert pdf._looks_like_name("Madeleine van Zuylen") and not pdf._looks_like_name("Allen Institute for AI")
    text = " ".join(f"Sentence number {i} has exactly seven words." for i in range(100))
    chunks = pdf._chunks(text)
    assert all(c.endswith(".") and len(c.split()) <= 180 for c in chunks)
    assert " ".join(chunks) == text
