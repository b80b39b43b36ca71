"""The real `labmate` command, run in subprocesses against real files, a real index and the real model.

Every command that embeds text pays ~8 s of model start-up, so the index is built once per module
(`lab` fixture) and tests that change it work on a copy of its folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENTRY_POINT = Path(sys.executable).parent / "labmate"
LABMATE = [str(ENTRY_POINT)] if ENTRY_POINT.exists() else [sys.executable, "-m", "bot.cli"]
HEAVY = ("torch", "faiss", "sentence_transformers", "transformers")
DOCUMENTED_KEYS = {"id", "title", "authors", "year", "venue", "url", "snippet", "score"}

BIB = r"""@article{mueller2019photo,
  title = {Photosynthesis in Cyanobacteria under Fluctuating Light},
  author = {M{\"u}ller, J{\"o}rg and Garc{\'\i}a, Ana},
  journal = {Plant Physiology},
  year = {2019},
  abstract = {We measure photosynthesis in cyanobacteria grown under fluctuating light and show that carbon fixation adapts within minutes.}
}

@inproceedings{vaswani2020lm,
  title = {Scaling Transformer Language Models},
  author = {Vaswani, Ashish and Shazeer, Noam},
  booktitle = {Proceedings of NeurIPS},
  year = {2020},
  abstract = {Transformer language models trained on large text corpora improve with scale in parameters and data.}
}

@article{broken2018,
  title = {Missing closing brace,
  author = {Nobody, A.},
  year = {2018

@article{dupont2021coral,
  title = {Coral Reef Bleaching and Ocean Warming},
  author = {Dupont, Fran{\c{c}}ois},
  journal = {Marine Ecology},
  year = {2021},
  abstract = {Ocean warming drives coral reef bleaching events; we survey reefs across the Pacific.}
}
"""
BROKEN_BIB_LINE = 17  # where `@article{broken2018` starts

JSONL_RECORDS = [
    {"id": "kim2020crispr", "title": "CRISPR Gene Editing in Wheat",
     "abstract": "We apply CRISPR-Cas9 gene editing to wheat to improve drought tolerance of the crop.",
     "authors": ["Min-Jun Kim", "Sara Lopez"], "year": 2020, "venue": "Nature Plants",
     "doi": "10.1000/crispr.wheat"},
    {"id": "lee2017glacier", "title": "Glacier Retreat Measured by Satellite Altimetry",
     "abstract": "Satellite altimetry shows accelerating glacier retreat in the Himalaya since 2000.",
     "authors": ["Hana Lee"], "year": 2017, "venue": "Journal of Glaciology", "doi": "10.1000/glacier"},
]
BAD_JSONL_LINE = '{"id": "bad", "title": oops not json}'

CSV = """id,title,abstract,authors,year,venue
smith2022bats,Echolocation in Bats,Bats use echolocation calls to navigate and hunt insects in darkness.,John Smith,2022,Animal Behaviour
chen2016quantum,Quantum Error Correction with Surface Codes,Surface codes protect qubits from decoherence in quantum computers.,Wei Chen,2016,Physical Review
"""

ALL_IDS = {"mueller2019photo", "vaswani2020lm", "dupont2021coral", "kim2020crispr", "lee2017glacier",
           "smith2022bats", "chen2016quantum"}
FILES = ["refs.bib", "papers.jsonl", "more.csv"]


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without any LABMATE_* setting that could leak in, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABMATE_")}
    env.update(extra)
    return env


def labmate(*args: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*LABMATE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def assert_clean_failure(result: subprocess.CompletedProcess, code: int = 1) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout


def write_sources(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "refs.bib").write_text(BIB, encoding="utf-8")
    lines = [json.dumps(r) for r in JSONL_RECORDS[:1]] + [BAD_JSONL_LINE] + [json.dumps(r) for r in JSONL_RECORDS[1:]]
    (folder / "papers.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "more.csv").write_text(CSV, encoding="utf-8")


class Lab:
    """A folder with the source files and an index built from them by `labmate index add`."""

    def __init__(self, folder: Path, add_result: subprocess.CompletedProcess):
        self.folder = folder
        self.index = folder / "idx"
        self.add_result = add_result

    def env(self, index: Path | None = None) -> dict[str, str]:
        return clean_env(LABMATE_INDEX__DIR=str(index or self.index))

    def run(self, *args: str, index: Path | None = None) -> subprocess.CompletedProcess:
        return labmate(*args, cwd=self.folder, env=self.env(index))

    def json(self, *args: str, index: Path | None = None):
        result = self.run(*args, index=index)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def copy_index(self, dest: Path) -> Path:
        shutil.copytree(self.index, dest)
        return dest


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Lab:
    folder = tmp_path_factory.mktemp("lab")
    write_sources(folder)
    result = labmate("index", "add", *FILES, cwd=folder, env=clean_env(LABMATE_INDEX__DIR=str(folder / "idx")))
    return Lab(folder, result)


# -- start-up: help, imports, config selection, config errors (no model) ------------------------------


def test_help_is_fast_and_lists_the_commands(tmp_path):
    env = clean_env(LABMATE_INDEX__DIR=str(tmp_path / "idx"))
    start = time.monotonic()
    result = labmate("--help", cwd=tmp_path, env=env)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    for command in ("index", "papers", "cite"):
        assert f"  {command} " in result.stdout
    assert elapsed < 5, f"`labmate --help` took {elapsed:.1f} s; a heavy library is imported at start-up"
    sub = labmate("index", "--help", cwd=tmp_path, env=env)
    assert sub.returncode == 0
    for command in ("add", "remove", "stats", "rebuild"):
        assert f"  {command} " in sub.stdout
    assert not (tmp_path / "idx").exists()  # help never creates an index


def test_python_dash_m_runs_the_same_cli(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bot.cli", "--help"], cwd=tmp_path, env=clean_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for command in ("index", "papers", "cite"):
        assert f"  {command} " in result.stdout


def test_importing_the_cli_loads_no_heavy_library():
    code = f"import sys, bot.cli; print([m for m in {HEAVY!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=clean_env(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    # Rendering every command's help must not import them either.
    code = ("import sys, contextlib, io, bot.cli\n"
            "for args in (['--help'], ['index', 'add', '--help'], ['papers', '--help'], ['cite', '--help']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "        bot.cli.main(args)\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=clean_env(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_config_option_env_and_local_file_select_the_config(tmp_path):
    """A relative [index] dir lands beside the selected config file, whatever the cwd."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    option_conf = tmp_path / "a" / "labmate.toml"
    env_conf = tmp_path / "b" / "labmate.toml"
    for conf, name in ((option_conf, "option_idx"), (env_conf, "env_idx")):
        conf.parent.mkdir()
        conf.write_text(f'[index]\ndir = "{name}"\n')
    (cwd / "config.toml").write_text('[index]\ndir = "local_idx"\n')

    def stats(*args: str, **env: str) -> dict:
        result = labmate(*args, "index", "stats", "--json", cwd=cwd, env=clean_env(**env))
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    data = stats("--config", str(option_conf))
    assert data["folder"] == str(tmp_path / "a" / "option_idx")
    assert (tmp_path / "a" / "option_idx").is_dir()
    assert data["papers"] == 0 and data["passages"] == 0

    data = stats(LABMATE_CONFIG=str(env_conf))
    assert data["folder"] == str(tmp_path / "b" / "env_idx")
    assert (tmp_path / "b" / "env_idx").is_dir()

    data = stats("--config", str(option_conf), LABMATE_CONFIG=str(env_conf))  # the option wins
    assert data["folder"] == str(tmp_path / "a" / "option_idx")

    data = stats()  # neither: ./config.toml
    assert data["folder"] == str(cwd / "local_idx")

    data = stats(LABMATE_INDEX__DIR="from_env")  # an env override beats the file, relative to the cwd
    assert data["folder"] == str(cwd / "from_env")
    assert not (cwd / "index").exists()


def test_bad_config_fails_every_command_without_traceback(tmp_path):
    conf = tmp_path / "bad.toml"
    conf.write_text('[index]\ndirr = "x"\n')
    (tmp_path / "x.bib").write_text(BIB)
    env = clean_env(LABMATE_CONFIG=str(conf))
    for args in (["index", "stats"], ["index", "add", "x.bib"], ["index", "remove", "a"], ["papers", "query"],
                 ["cite", "a"]):
        result = labmate(*args, cwd=tmp_path, env=env)
        assert_clean_failure(result)
        assert "unknown key 'index.dirr'" in result.stderr, args
        assert result.stderr.startswith("error: ")
    assert not (tmp_path / "x").exists() and not (tmp_path / "index").exists()

    result = labmate("index", "stats", cwd=tmp_path, env=clean_env(LABMATE_SEARCH__KK="3"))
    assert_clean_failure(result)
    assert "search.kk" in result.stderr and "LABMATE_SEARCH__KK" in result.stderr

    result = labmate("--config", str(tmp_path / "missing.toml"), "index", "stats", cwd=tmp_path, env=clean_env())
    assert_clean_failure(result)
    assert "does not exist" in result.stderr

    (tmp_path / "broken.toml").write_text("[index\n")
    result = labmate("--config", "broken.toml", "index", "stats", cwd=tmp_path, env=clean_env())
    assert_clean_failure(result)
    assert "not valid TOML" in result.stderr


def test_bad_year_filters_and_missing_query_fail_clearly(tmp_path):
    env = clean_env(LABMATE_INDEX__DIR=str(tmp_path / "idx"))
    result = labmate("papers", "anything", "--year", "2020-2019", cwd=tmp_path, env=env)
    assert_clean_failure(result)
    assert "2020-2019" in result.stderr and "backwards" in result.stderr
    result = labmate("papers", "anything", "--year", "abc", cwd=tmp_path, env=env)
    assert_clean_failure(result)
    assert "'abc'" in result.stderr and "2019-2023" in result.stderr  # says what to write instead
    result = labmate("papers", cwd=tmp_path, env=env)
    assert_clean_failure(result, code=2)
    assert "Usage: " in result.stderr and "labmate papers" in result.stderr
    assert "Give a query" in result.stderr
    result = labmate("papers", "x", "-k", "0", cwd=tmp_path, env=env)
    assert_clean_failure(result, code=2)
    result = labmate("index", "add", cwd=tmp_path, env=env)
    assert_clean_failure(result, code=2)
    assert "Nothing to add" in result.stderr


# -- a real index: add, stats, search, cite, batch, remove ------------------------------------------


@pytest.mark.slow
def test_index_add_reports_added_and_skipped_entries(lab):
    result = lab.add_result
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    summary = result.stdout
    assert summary.startswith("3 file(s): 7 added, 0 merged, 0 unchanged, 2 skipped (7 passages embedded)")
    assert f"skipped refs.bib: entry at line {BROKEN_BIB_LINE}:" in summary
    assert "skipped papers.jsonl: line 2: invalid JSON" in summary


@pytest.mark.slow
def test_index_stats_json(lab):
    data = lab.json("index", "stats", "--json")
    assert data["papers"] == 7
    assert data["passages"] == 7  # one short abstract each
    assert data["model"] == "all-MiniLM-L6-v2"
    assert data["index_kind"] == "flat"
    assert data["folder"] == str(lab.index)
    # At least the 7 float32 vectors of 384 dimensions; SQLite's WAL files count while it is open.
    assert 7 * 384 * 4 < data["size_bytes"] < 5_000_000
    text = lab.run("index", "stats")
    assert text.returncode == 0
    assert "Papers:     7" in text.stdout and "all-MiniLM-L6-v2 (384 dimensions)" in text.stdout


@pytest.mark.slow
def test_papers_json_ranks_the_matching_paper_first(lab):
    data = lab.json("papers", "photosynthesis in cyanobacteria", "--json", "-k", "3")
    assert data["query"] == "photosynthesis in cyanobacteria"
    results = data["results"]
    assert len(results) == 3
    assert all(set(hit) == DOCUMENTED_KEYS for hit in results)
    top = results[0]
    assert top["id"] == "mueller2019photo"
    assert top["title"] == "Photosynthesis in Cyanobacteria under Fluctuating Light"
    assert top["authors"] == ["Jörg Müller", "Ana García"]  # LaTeX accents decoded
    assert top["year"] == 2019 and top["venue"] == "Plant Physiology"
    assert "cyanobacteria" in top["snippet"]
    scores = [hit["score"] for hit in results]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[1]
    assert len({hit["id"] for hit in results}) == 3


@pytest.mark.slow
def test_papers_batch_prints_one_ranked_line_per_query(lab, tmp_path):
    queries = [("q1", "photosynthesis in cyanobacteria"), ("q2", "transformer language models"),
               ("q3", "how bats navigate with echolocation"), ("q4", "glacier retreat from satellite data")]
    expected = {"q1": "mueller2019photo", "q2": "vaswani2020lm", "q3": "smith2022bats", "q4": "lee2017glacier"}
    path = tmp_path / "queries.jsonl"
    path.write_text("\n".join(json.dumps({"_id": q, "text": t}) for q, t in queries) + "\n\n")
    result = lab.run("papers", "--batch", str(path), "-k", "5", "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["query_id"] for line in lines] == ["q1", "q2", "q3", "q4"]
    for line in lines:
        assert set(line) == {"query_id", "results"}
        assert len(line["results"]) == 5
        assert all(set(hit) == {"id", "score"} for hit in line["results"])
        assert {hit["id"] for hit in line["results"]} <= ALL_IDS
        assert line["results"][0]["id"] == expected[line["query_id"]]


@pytest.mark.slow
def test_year_filter_restricts_results(lab):
    results = lab.json("papers", "transformer language models", "--json", "-k", "10", "--year", "2019-2020")["results"]
    # Exactly the papers of 2019 and 2020, the matching one first.
    assert {hit["id"] for hit in results} == {"mueller2019photo", "vaswani2020lm", "kim2020crispr"}
    assert all(2019 <= hit["year"] <= 2020 for hit in results)
    assert results[0]["id"] == "vaswani2020lm"


@pytest.mark.slow
def test_author_filter_restricts_results(lab):
    # The query matches another paper best; the filter (case-insensitive) leaves only Vaswani's.
    results = lab.json("papers", "photosynthesis in cyanobacteria", "--json", "--author", "vaswani")["results"]
    assert [hit["id"] for hit in results] == ["vaswani2020lm"]
    assert "Ashish Vaswani" in results[0]["authors"]


@pytest.mark.slow
def test_author_filter_matches_non_ascii_names(lab):
    results = lab.json("papers", "cyanobacteria", "--json", "--author", "Müller")["results"]
    assert [hit["id"] for hit in results] == ["mueller2019photo"]


@pytest.mark.slow
def test_cite_prints_original_or_generated_bibtex(lab):
    result = lab.run("cite", "mueller2019photo")
    assert result.returncode == 0, result.stderr
    original = BIB[:BIB.index("\n}\n") + 2]  # the first entry, exactly as written in refs.bib
    assert result.stdout.strip() == original.strip()

    result = lab.run("cite", "kim2020crispr")
    assert result.returncode == 0, result.stderr
    entry = result.stdout.strip()
    assert entry.startswith("@article{kim2020crispr,")  # generated: a journal venue makes it an article
    assert entry.endswith("}")
    assert "CRISPR Gene Editing in Wheat" in entry
    assert "author = {Min-Jun Kim and Sara Lopez}" in entry
    assert "journal = {Nature Plants}" in entry
    assert "year = {2020}" in entry
    assert "doi = {10.1000/crispr.wheat}" in entry

    result = lab.run("cite", "smith2022bats", "vaswani2020lm")  # several, in the order given
    assert result.returncode == 0, result.stderr
    assert result.stdout.index("@article{smith2022bats,") < result.stdout.index("@inproceedings{vaswani2020lm,")

    result = lab.run("cite", "nope")
    assert_clean_failure(result)
    assert "No paper with id nope" in result.stderr
    assert result.stdout == ""
    result = lab.run("cite", "vaswani2020lm", "nope")  # unknown ids fail before anything is printed
    assert_clean_failure(result)
    assert result.stdout == ""


@pytest.mark.slow
def test_readding_the_same_files_changes_nothing(lab, tmp_path):
    index = lab.copy_index(tmp_path / "idx")
    before = lab.json("index", "stats", "--json", index=index)
    result = lab.run("index", "add", *FILES, index=index)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("3 file(s): 0 added, 0 merged, 7 unchanged, 2 skipped (0 passages embedded)")
    after = lab.json("index", "stats", "--json", index=index)
    assert (after["papers"], after["passages"]) == (before["papers"], before["passages"]) == (7, 7)


@pytest.mark.slow
def test_readding_a_file_by_another_path_spelling_is_unchanged(lab, tmp_path):
    index = lab.copy_index(tmp_path / "idx")
    result = lab.run("index", "add", str(lab.folder / "papers.jsonl"), index=index)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("1 file(s): 0 added, 0 merged, 2 unchanged")


@pytest.mark.slow
def test_index_remove_drops_the_paper(lab, tmp_path):
    index = lab.copy_index(tmp_path / "idx")
    result = lab.run("index", "remove", "vaswani2020lm", index=index)
    assert result.returncode == 0, result.stderr
    assert "Removed 1 paper(s): vaswani2020lm" in result.stdout
    data = lab.json("index", "stats", "--json", index=index)
    assert (data["papers"], data["passages"]) == (6, 6)
    result = lab.run("cite", "vaswani2020lm", index=index)
    assert_clean_failure(result)
    assert "vaswani2020lm" in result.stderr
    assert lab.run("cite", "mueller2019photo", index=index).returncode == 0  # the others stay

    result = lab.run("index", "remove", "nope", "kim2020crispr", index=index)  # all or nothing
    assert_clean_failure(result)
    assert "nope" in result.stderr
    data = lab.json("index", "stats", "--json", index=index)
    assert data["papers"] == 6
