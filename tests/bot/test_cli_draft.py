"""`labmate draft` as a user runs it: a subprocess on a real index, with the real default model."""

from __future__ import annotations

import json
import re

import pytest

from tests.bot.test_cli import REPO, assert_clean_failure, clean_env, lab, labmate  # noqa: F401 (fixture)

METRICS = REPO / "tests" / "drafting" / "data" / "metrics_run.json"
MODELS = REPO / "index" / "models"  # the dequantized weights cache the real runs share


def run(lab, *args):
    env = lab.env() | {"LABMATE_DRAFTING__CACHE_DIR": str(MODELS)}
    return labmate("draft", *args, cwd=lab.folder, env=env, timeout=600)


def test_bad_requests_fail_cleanly_before_loading_anything(tmp_path):
    env = clean_env(LABMATE_INDEX__DIR=str(tmp_path / "idx"))
    unknown = labmate("draft", "summary", "--topic", "x", cwd=tmp_path, env=env)
    assert_clean_failure(unknown)
    assert "Unknown section 'summary'" in unknown.stderr and "related-work" in unknown.stderr
    missing = labmate("draft", "results", "--metrics", "nope.json", cwd=tmp_path, env=env)
    assert_clean_failure(missing)
    assert "nope.json does not exist" in missing.stderr
    (tmp_path / "m.json").write_text('{"eval_f1": 0.8}')
    wrong = labmate("draft", "methods", "--metrics", "m.json", cwd=tmp_path, env=env)
    assert_clean_failure(wrong)
    assert "labmate draft results --metrics" in wrong.stderr
    assert not (tmp_path / "idx").exists()


@pytest.mark.slow
def test_related_work_json_and_files(lab):
    result = run(lab, "related-work", "--topic", "photosynthesis in cyanobacteria under light", "--k", "2",
                 "--json", "--out", "drafts/rw")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"section", "text", "citations", "references", "bibtex", "warnings"}
    assert out["section"] == "related-work" and len(out["citations"]) == 2
    numbers = {int(n) for n in re.findall(r"\[(\d+)\]", out["text"])}
    assert numbers == {c["n"] for c in out["citations"]} == {1, 2}
    assert "mueller2019photo" in [c["key"] for c in out["citations"]]  # the .bib entry's own key
    assert (lab.folder / "drafts" / "rw.bib").read_text() == out["bibtex"]
    markdown = (lab.folder / "drafts" / "rw.md").read_text()
    assert markdown.startswith("## Related work") and "### References" in markdown


@pytest.mark.slow
def test_results_from_a_metrics_file(lab):
    from drafting.metrics import check_numbers, normalize_metrics

    result = run(lab, "results", "--metrics", str(METRICS), "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["section"] == "results" and out["citations"] == [] and "|" in out["text"]
    metrics = normalize_metrics(json.loads(METRICS.read_text()), str(METRICS))
    paragraph = out["text"].split("\n\n")[-1]
    assert check_numbers(paragraph, metrics) == []
