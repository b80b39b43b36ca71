"""Loaders on real files from ../shared/data and on small broken inputs."""

from __future__ import annotations

import json
from pathlib import Path

from retrieval.loaders import find_files, load_file
from retrieval.records import find_arxiv_id, normalize_doi, normalize_title, parse_year, split_authors


def test_real_bibtex_decodes_latex_and_keeps_keys(data_dir):
    result = load_file(data_dir / "bibtex" / "d2l.bib")
    assert len(result.records) == 488 and result.problems == []
    by_key = {r.id: r for r in result.records}
    tf = by_key["Abadi.Barham.Chen.ea.2016"]
    assert tf.title == "TensorFlow: A system for large-scale machine learning"
    assert tf.authors[0] == "Martín Abadi"  # Mart{\'\i}n decoded, "Last, First" reordered
    assert "et al." not in tf.authors
    assert tf.year == 2016 and tf.venue.startswith("12th USENIX Symposium")
    assert tf.bibtex.startswith("@InProceedings") and "Abadi.Barham.Chen.ea.2016" in tf.bibtex
    assert all("{" not in r.title and "\\" not in r.title for r in result.records)


def test_bibtex_bad_entry_is_reported_and_others_kept(tmp_path):
    bib = tmp_path / "lib.bib"
    bib.write_text(
        "@article{good1, title={Caf{\\'e} networks}, author={M{\\\"u}ller, J{\\\"o}rg and Smith, Ann}, year={2021},"
        " doi={https://doi.org/10.1000/ABC}}\n"
        "@article{broken, title={Never closed, year=2020\n"
        "@misc{notitle, author={Nobody}, year={2019}}\n"
        "@inproceedings{good2, title={Second}, booktitle={Proc. of X}, year=2018, eprint={2101.00001},"
        " archivePrefix={arXiv}}\n"
        "@article{good1, title={Duplicate key}}\n"
    )
    result = load_file(bib)
    assert [r.id for r in result.records] == ["good1", "good2"]
    good1, good2 = result.records
    assert good1.title == "Café networks" and good1.authors == ["Jörg Müller", "Ann Smith"]
    assert good1.doi == "10.1000/abc" and good2.arxiv == "2101.00001"
    reasons = "\n".join(str(p) for p in result.problems)
    assert "line 2" in reasons  # the unterminated entry, located
    assert "notitle" in reasons and "no title" in reasons
    assert "duplicate citation key 'good1'" in reasons
    assert all(p.file == str(bib) for p in result.problems)


def test_beir_jsonl_with_bad_lines(tmp_path, data_dir):
    src = (data_dir / "scifact" / "corpus.jsonl").read_text().splitlines()[:3]
    path = tmp_path / "beir.jsonl"
    path.write_text("\n".join([src[0], "{not json", src[1], '["a list"]', "", src[2], '{"_id": "x"}']) + "\n")
    result = load_file(path)
    first = json.loads(src[0])
    assert [r.id for r in result.records] == [json.loads(s)["_id"] for s in src]
    assert result.records[0].title == first["title"] and result.records[0].abstract == first["text"]
    wheres = sorted(p.where for p in result.problems)
    assert wheres == ["line 2", "line 4", "line 7"]
    assert "invalid JSON" in str(result.problems[0])


def test_native_json_and_csv(tmp_path):
    native = {"id": "n1", "title": "Graph  neural networks", "abstract": "We study GNNs.",
              "authors": ["Ada Lovelace", {"name": "Alan Turing"}], "year": "2020-05-01",
              "venue": "NeurIPS", "doi": "doi:10.5555/XYZ", "url": "https://arxiv.org/abs/2005.12345v2"}
    (tmp_path / "a.json").write_text(json.dumps([native, {"id": "n2"}]))
    (tmp_path / "b.csv").write_text("id,title,abstract,authors,year,venue,doi\n"
                                    "c1,CSV paper,\"An abstract, with comma\",Ann Lee; Bo Chen,2019,ACL,\n"
                                    "c2,,,,,,\n")
    json_result = load_file(tmp_path / "a.json")
    record = json_result.records[0]
    assert (record.id, record.title, record.year, record.doi, record.arxiv) == (
        "n1", "Graph neural networks", 2020, "10.5555/xyz", "2005.12345")
    assert record.authors == ["Ada Lovelace", "Alan Turing"]
    assert [p.where for p in json_result.problems] == ["record 2"]
    csv_result = load_file(tmp_path / "b.csv")
    assert [(r.id, r.authors, r.year) for r in csv_result.records] == [("c1", ["Ann Lee", "Bo Chen"], 2019)]
    assert csv_result.records[0].abstract == "An abstract, with comma"
    assert [p.where for p in csv_result.problems] == ["line 3"]


def test_csv_without_title_column_is_refused(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("name,when\nfoo,2020\n")
    result = load_file(path)
    assert result.records == [] and "header needs a 'title' column" in str(result.problems[0])


def test_find_files_recurses_and_reports(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    for name in ("a.bib", "sub/b.jsonl", "sub/deeper/c.pdf", "sub/notes.txt"):
        (tmp_path / name).write_text("x")
    files, problems = find_files([tmp_path, tmp_path / "missing.bib", tmp_path / "sub" / "notes.txt"])
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["a.bib", "sub/b.jsonl", "sub/deeper/c.pdf"]
    assert [p.reason.split(";")[0] for p in problems] == ["no such file or folder", "unsupported file type"]


def test_normalizers():
    assert normalize_doi("https://dx.doi.org/10.1/AbC.") == "10.1/abc"
    assert normalize_doi("not a doi") is None
    assert find_arxiv_id(None, "10.48550/arXiv.2304.02623") == "2304.02623"
    assert find_arxiv_id("https://arxiv.org/abs/hep-th/9901001v3") == "hep-th/9901001"
    assert normalize_title("Deep  Résumé-Learning.") == "deep resume learning"
    assert parse_year("May 2019") == 2019 and parse_year("n/a") is None and parse_year(1999) == 1999
    assert split_authors("Smith, John") == ["Smith, John"]
    assert split_authors("A B and C D") == ["A B", "C D"]
