"""Job specs: the issue's shape is accepted, bad fields and paths outside the data roots are
refused with errors that name them, and the queue keeps what was submitted."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_settings
from training.service import LocalService
from training.settings import TrainingSettings
from training.spec import SpecError, load_spec, parse_spec
from training.store import CANCELLED, QUEUED, RUNNING, JobStore

ISSUE_SPEC = """
task = "token-classification"
base_model = "default"
[data]
train = "data/ner/train.tsv"
eval = "data/ner/devel.tsv"
[train]
epochs = 3
learning_rate = 5e-5
batch_size = 16
max_length = 128
seed = 42
"""


@pytest.fixture
def project(tmp_path) -> Path:
    """A lab's folder: config.toml's defaults put data in data/ and specs beside it."""
    ner = tmp_path / "data" / "ner"
    ner.mkdir(parents=True)
    for name in ("train.tsv", "devel.tsv"):
        (ner / name).write_text("Colon\tB-Disease\ncancer\tI-Disease\n.\tO\n")
    (tmp_path / "ner.toml").write_text(ISSUE_SPEC)
    return tmp_path


def test_the_issue_spec_loads_with_paths_resolved_against_its_folder(project):
    spec, text = load_spec(project / "ner.toml", data_roots=[project / "data"])
    assert text == ISSUE_SPEC
    assert spec.task == "token-classification" and spec.name == "ner"
    assert spec.data.train == (project / "data/ner/train.tsv").resolve()
    assert spec.train.epochs == 3 and spec.train.learning_rate == 5e-5 and spec.train.batch_size == 16


def test_default_data_root_is_data_beside_config_and_env_takes_a_json_list(project):
    (project / "config.toml").write_text("")
    settings = load_settings(project / "config.toml", env={})
    assert settings.training.data_roots == [project / "data"]
    load_spec(project / "ner.toml", data_roots=settings.training.data_roots)  # inside: accepted
    env = {"LABMATE_TRAINING__DATA_ROOTS": '["/srv/data"]'}
    moved = load_settings(project / "config.toml", env=env).training.data_roots
    assert moved == [Path("/srv/data")]
    with pytest.raises(SpecError, match=r"data.train = 'data/ner/train.tsv' is outside .*\[training\] data_roots"):
        load_spec(project / "ner.toml", data_roots=moved)


@pytest.mark.parametrize("text, message", [
    ('task = "ner"\n[data]\ntrain = "data/ner/train.tsv"', "task must be one of token-classification"),
    ('task = "token-classification"\n[data]\ntrain = "data/ner/train.tsv"\n[train]\nlearning_rate = -1',
     "train.learning_rate: Input should be greater than 0"),
    ('task = "token-classification"\n[data]\ntrain = "data/ner/train.tsv"\n[train]\nepoch = 3',
     "unknown key 'train.epoch'"),
    ('task = "token-classification"\n[train]\nepochs = 3', "'data' is required"),
    ('task = "token-classification"\n[data]\ntrain = "data/ner/missing.tsv"', "data.train .* there is no file"),
    ('task = "token-classification"\n[data]\ntrain = "../outside.tsv"', "data.train = '../outside.tsv' is outside"),
    ('task = "token-classification"\n[data\ntrain = 1', "not valid TOML"),
])
def test_bad_specs_are_refused_naming_the_field(project, text, message):
    (project / "outside.tsv").write_text("a\tO\n")
    with pytest.raises(SpecError, match=message):
        parse_spec(text, base_dir=project, data_roots=[project / "data"])


def test_a_symlink_out_of_the_data_root_is_refused(project, tmp_path_factory):
    secret = tmp_path_factory.mktemp("elsewhere") / "secret.tsv"
    secret.write_text("x\tO\n")
    (project / "data" / "link.tsv").symlink_to(secret)
    with pytest.raises(SpecError, match="outside the data folders"):
        parse_spec('task = "token-classification"\n[data]\ntrain = "data/link.tsv"', base_dir=project,
                   data_roots=[project / "data"])


def test_queue_submit_claim_cancel_resume(project):
    settings = TrainingSettings(data_roots=[project / "data"], specs_dir=project, database=project / "jobs.sqlite")
    service = LocalService(settings)
    first = service.submit_preset("ner", origin={"channel": "C1"})
    second = service.submit((project / "ner.toml").read_text(), base_dir=str(project))
    assert first.state == QUEUED and first.origin == {"channel": "C1"} and service.presets() == ["ner"]
    with pytest.raises(SpecError, match="no preset 'nope' .*presets: ner"):
        service.submit_preset("nope")

    other = JobStore(settings.database)  # a second process sees the same queue
    claimed = other.claim("w1")
    assert claimed.id == first.id and claimed.state == RUNNING and claimed.attempts == 1
    assert service.store.claim("w2").id == second.id and service.store.claim("w3") is None

    running = service.cancel(first.id)
    assert running.state == RUNNING and running.cancel_requested  # the worker stops it
    third = service.submit_preset("ner")
    assert service.cancel(third.id).state == CANCELLED  # a queued job is cancelled at once
    resumed = service.resume(third.id)
    assert resumed.state == QUEUED and not resumed.cancel_requested
    with pytest.raises(Exception, match="only failed or cancelled jobs can be resumed"):
        service.resume(second.id)
    assert [j.id for j in service.list(active=True)] == [third.id, second.id, first.id]
