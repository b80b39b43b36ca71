"""The training HTTP API (`training.api`) and its client (`training.client.RemoteService`):
real HTTP on 127.0.0.1, a `LocalService` on a temporary database. Nothing trains here."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time

import pytest

from core.errors import ConfigError, NotFoundError, UserError
from training.api import start_api
from training.client import RemoteService
from training.service import LocalService, make_service
from training.settings import TrainingSettings
from training.spec import SpecError
from training.store import MetricPoint

TOKEN = "s3cret-token"
TSV = "Aspirin\tB-CHEM\ninhibits\tO\nCOX\tB-GENE\n\nIbuprofen\tB-CHEM\nworks\tO\n"


@pytest.fixture
def settings(tmp_path) -> TrainingSettings:
    data = tmp_path / "data" / "ner"
    data.mkdir(parents=True)
    (data / "train.tsv").write_text(TSV, encoding="utf-8")
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "ner.toml").write_text('task = "token-classification"\n[data]\ntrain = "../data/ner/train.tsv"\n')
    return TrainingSettings(data_roots=[tmp_path / "data"], specs_dir=specs, runs_dir=tmp_path / "runs",
                            database=tmp_path / "training.sqlite")


@pytest.fixture
def server(service):
    srv = start_api(service, "127.0.0.1", 0, TOKEN)
    yield srv
    srv.shutdown()


@pytest.fixture
def url(server) -> str:
    return f"http://127.0.0.1:{server.server_port}"


@pytest.fixture
def remote(url) -> RemoteService:
    return RemoteService(url, TOKEN, timeout=5, retries=1)


def spec_text(tmp_path, train: str | None = None, extra: str = "") -> str:
    train = train or str(tmp_path / "data" / "ner" / "train.tsv")
    return f'task = "token-classification"\nname = "ner-test"\n[data]\ntrain = "{train}"\n{extra}'


def raw(url: str, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
    """(status, body bytes, headers) of one request sent with http.client."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


def test_submit_get_list_cancel_resume(remote, tmp_path):
    job = remote.submit(spec_text(tmp_path), origin={"channel": "C1"})
    assert (job.name, job.task, job.state) == ("ner-test", "token-classification", "queued")
    assert job.origin == {"channel": "C1"}
    preset = remote.submit_preset("ner")
    assert preset.id == job.id + 1 and preset.name == "ner" and preset.state == "queued"
    assert remote.get(job.id).spec["data"]["train"] == str((tmp_path / "data/ner/train.tsv").resolve())
    assert [j.id for j in remote.list()] == [preset.id, job.id]

    assert remote.cancel(job.id).state == "cancelled"
    assert [j.id for j in remote.list(active=True)] == [preset.id]
    assert [j.id for j in remote.list(limit=1)] == [preset.id]
    assert remote.resume(job.id).state == "queued"
    with pytest.raises(UserError, match="only failed or cancelled"):
        remote.resume(job.id)
    assert remote.presets() == ["ner"]


def test_logs_and_metrics(remote, service, tmp_path):
    job = remote.submit(spec_text(tmp_path))
    assert remote.logs(job.id) == ""
    log_path = service.log_path(job.id)
    log_path.parent.mkdir(parents=True)
    log_path.write_text("".join(f"line {i}\n" for i in range(10)), encoding="utf-8")
    assert remote.logs(job.id, lines=2) == "line 8\nline 9"
    service.store.add_metrics(job.id, 1, 0.5, "train", {"loss": 2.5, "learning_rate": 1e-5})
    service.store.add_metrics(job.id, 2, 1.0, "eval", {"f1": 0.75})
    points = remote.metrics(job.id)
    assert all(isinstance(p, MetricPoint) for p in points)
    assert [(p.step, p.kind, p.name, p.value) for p in points] == [
        (1, "train", "loss", 2.5), (1, "train", "learning_rate", 1e-5), (2, "eval", "f1", 0.75)]
    assert [p.name for p in remote.metrics(job.id, since_step=1)] == ["f1"]


def test_service_errors_come_back_as_the_same_classes(remote, tmp_path):
    with pytest.raises(SpecError, match=r"train\.epochs"):
        remote.submit(spec_text(tmp_path, extra="[train]\nepochs = -1\n"))
    outside = tmp_path / "elsewhere.tsv"
    outside.write_text(TSV, encoding="utf-8")
    with pytest.raises(SpecError, match="outside the data folders"):
        remote.submit(spec_text(tmp_path, train=str(outside)))
    with pytest.raises(SpecError, match="no preset 'nope'"):
        remote.submit_preset("nope")
    for call in (remote.get, remote.cancel, remote.resume, remote.logs):
        with pytest.raises(NotFoundError, match="no training job 999"):
            call(999)
    assert remote.list() == []  # nothing was queued by the refused submissions


def test_auth_is_required(url, server):
    status, body, headers = raw(url, "GET", "/jobs")
    assert status == 401 and "Bearer" in headers["WWW-Authenticate"]
    assert raw(url, "GET", "/jobs", {"Authorization": "Bearer wrong"})[0] == 403
    assert raw(url, "GET", "/nowhere", {"Authorization": "Basic abc"})[0] == 401
    assert raw(url, "GET", "/healthz")[:2] == (200, b"ok\n")
    with pytest.raises(ConfigError, match="none was sent.*LABMATE_TRAIN_TOKEN"):
        RemoteService(url, "").list()
    with pytest.raises(ConfigError, match="refused the token.*LABMATE_TRAIN_TOKEN"):
        RemoteService(url, "wrong").list()


def test_malformed_requests(url, server):
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    cases = [
        ("POST", "/jobs", b"{not json", 400, "UserError"),
        ("POST", "/jobs", b"[1]", 400, "UserError"),
        ("POST", "/jobs", json.dumps({"preset": "ner", "spec_text": "x"}).encode(), 400, "UserError"),
        ("POST", "/jobs", json.dumps({"preset": "ner", "colour": 1}).encode(), 400, "UserError"),
        ("POST", "/jobs", json.dumps({"spec_text": 3}).encode(), 400, "UserError"),
        ("GET", "/jobs?limit=many", None, 400, "UserError"),
        ("GET", "/jobs/abc", None, 404, "NotFoundError"),
        ("GET", "/nowhere", None, 404, "NotFoundError"),
        ("DELETE", "/jobs", None, 405, "UserError"),
    ]
    for method, path, body, status, kind in cases:
        got, data, _ = raw(url, method, path, auth, body)
        assert (got, json.loads(data)["kind"]) == (status, kind), (method, path, body)
    big = {**auth, "Content-Length": str(2 << 20)}
    assert raw(url, "POST", "/jobs", big, b"")[0] == 413


def test_unexpected_errors_are_500_with_a_generic_message(service, url, server, monkeypatch, caplog):
    def broken(job_id):
        raise RuntimeError("database path /secret/x is gone")

    monkeypatch.setattr(service, "get", broken)
    remote = RemoteService(url, TOKEN, timeout=5, retries=1)
    remote.backoff = 0.01
    with caplog.at_level(logging.ERROR, logger="labmate.training.api"):
        with pytest.raises(UserError, match="failed on this request") as info:
            remote.get(1)
    assert "/secret" not in str(info.value)
    assert "database path /secret/x is gone" in caplog.text
    assert caplog.text.count("request failed") == 2  # a 5xx GET is retried once


def test_dead_url_gives_a_clear_error_quickly():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    remote = RemoteService(f"http://127.0.0.1:{port}", TOKEN, timeout=1, retries=2)
    remote.backoff = 0.05
    start = time.monotonic()
    with pytest.raises(UserError, match=r"at http://127\.0\.0\.1:\d+ is not answering \(connection refused\)"
                       r"\. Start it with `labmate train serve`") as info:
        remote.list()
    assert type(info.value) is UserError
    assert time.monotonic() - start < 3
    with pytest.raises(UserError, match="is not answering"):  # refused: a submission is retried too
        remote.submit_preset("ner")


@pytest.fixture
def mute_server():
    """A server that accepts connections and closes them without answering; counts them."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    accepted = []

    def loop():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.recv(65536)
            accepted.append(1)
            conn.close()

    threading.Thread(target=loop, daemon=True).start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", accepted
    sock.close()


def test_a_submission_that_may_have_arrived_is_not_sent_twice(mute_server, tmp_path):
    url, accepted = mute_server
    remote = RemoteService(url, TOKEN, timeout=2, retries=2)
    remote.backoff = 0.01
    with pytest.raises(UserError, match="may or may not have been queued"):
        remote.submit(spec_text(tmp_path))
    assert len(accepted) == 1
    with pytest.raises(UserError, match="is not answering"):
        remote.list()
    assert len(accepted) == 1 + 3  # a GET is tried once and retried twice


def test_empty_token_is_refused_at_start(service):
    with pytest.raises(ConfigError, match="LABMATE_TRAIN_TOKEN"):
        start_api(service, "127.0.0.1", 0, "")
    service.settings.token_env = "LAB_TOKEN"
    with pytest.raises(ConfigError, match="LAB_TOKEN"):
        start_api(service, "127.0.0.1", 0, "  ")


def test_bad_url_is_a_config_error():
    with pytest.raises(ConfigError, match="not an http"):
        RemoteService("gpu-box:8600", TOKEN)


def test_make_service_picks_remote_when_url_is_set(settings, url, tmp_path):
    remote_settings = settings.model_copy(update={"url": url})
    chosen = make_service(remote_settings, env={"LABMATE_TRAIN_TOKEN": TOKEN})
    assert isinstance(chosen, RemoteService)
    assert chosen.presets() == ["ner"]
    assert chosen.submit(spec_text(tmp_path)).state == "queued"
    local = make_service(settings, env={})
    assert isinstance(local, LocalService)
    local.close()
