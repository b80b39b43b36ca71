"""`labmate train serve`'s /healthz and /metrics: real HTTP on 127.0.0.1, a `LocalService` on a
temporary job database with jobs in every state, scraped and parsed with prometheus_client."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from training.api import start_api
from training.settings import TrainingSettings
from training.store import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, STATES
from training.worker import Worker

TOKEN = "s3cret-token"


@pytest.fixture
def settings(tmp_path) -> TrainingSettings:
    return TrainingSettings(data_roots=[tmp_path / "data"], specs_dir=tmp_path / "specs", runs_dir=tmp_path / "runs",
                            database=tmp_path / "training.sqlite", poll_seconds=0.1)


def get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


def scrape(base: str) -> dict[tuple[str, tuple], float]:
    status, text = get(base + "/metrics")  # no token: /metrics is open, like /healthz
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def key(metric: str, /, **labels) -> tuple[str, tuple]:
    return metric, tuple(sorted(labels.items()))


def add_jobs(service, states: dict[str, int]) -> None:
    """Jobs in the given states, moved there through the store's own transitions."""
    store = service.store
    for state, count in states.items():
        for _ in range(count):
            job = store.submit(name=f"{state}-job", task="token-classification", spec={}, spec_text="")
            if state in (RUNNING, SUCCEEDED, FAILED):
                assert store.claim("test-worker", job.id).state == RUNNING
            if state in (SUCCEEDED, FAILED):
                store.finish(job.id, state, error="boom" if state == FAILED else None)
            if state == CANCELLED:
                store.request_cancel(job.id)
            assert store.get(job.id).state == state


def test_metrics_count_jobs_by_state_and_requests_by_route(service):
    wanted = {QUEUED: 2, RUNNING: 1, SUCCEEDED: 3, FAILED: 1, CANCELLED: 1}
    add_jobs(service, wanted)
    server = start_api(service, "127.0.0.1", 0, TOKEN)
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert get(base + "/healthz") == (200, "ok\n")
        assert get(base + "/jobs", TOKEN)[0] == 200
        assert get(base + "/jobs")[0] == 401
        assert get(base + "/jobs/1", TOKEN)[0] == 200
        assert get(base + "/jobs/999", TOKEN)[0] == 404
        assert get(base + "/nowhere", TOKEN)[0] == 404
        samples = scrape(base)
        for state in STATES:
            assert samples[key("labmate_training_jobs", state=state)] == wanted[state]
        assert samples[key("labmate_training_store_up")] == 1.0
        assert samples[key("labmate_training_workers")] == 0.0  # no worker heartbeats
        requests = {k: v for k, v in samples.items() if k[0] == "labmate_training_api_requests_total"}
        assert requests == {
            key("labmate_training_api_requests_total", method="GET", route="/healthz", status="200"): 1.0,
            key("labmate_training_api_requests_total", method="GET", route="/jobs", status="200"): 1.0,
            key("labmate_training_api_requests_total", method="GET", route="/jobs", status="401"): 1.0,
            key("labmate_training_api_requests_total", method="GET", route="/jobs/{id}", status="200"): 1.0,
            key("labmate_training_api_requests_total", method="GET", route="/jobs/{id}", status="404"): 1.0,
            key("labmate_training_api_requests_total", method="GET", route="other", status="404"): 1.0,
        }
        service.store.finish(1, SUCCEEDED)  # read at scrape time: the next scrape sees it
        samples = scrape(base)
        assert samples[key("labmate_training_jobs", state=QUEUED)] == 1.0
        assert samples[key("labmate_training_jobs", state=SUCCEEDED)] == 4.0
        assert samples[key("labmate_training_api_requests_total", method="GET", route="/metrics", status="200")] == 1.0
        assert samples[key("process_cpu_seconds_total")] > 0
    finally:
        server.shutdown()


def test_healthz_reports_a_stopped_worker_and_a_missing_database(service, settings):
    worker = Worker(settings).start()
    server = start_api(service, "127.0.0.1", 0, TOKEN, worker=worker)
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert get(base + "/healthz") == (200, "ok\n")
        assert scrape(base)[key("labmate_training_workers")] == 1.0
        worker.stop()
        assert get(base + "/healthz") == (503, "training worker stopped\n")
        settings.database.unlink()
        assert get(base + "/healthz") == (503, "job database missing\n")
    finally:
        worker.stop()
        server.shutdown()
