"""/healthz and /metrics of the bot: the real Bolt app over real HTTP (and Socket Mode) against
the fake Slack, scraped over HTTP and parsed with prometheus_client's own parser."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import create_app
from bot.config import Settings
from bot.devslack import FakeSlack, SlackSender
from bot.metrics import BotMetrics, serve_metrics
from bot.serve import start_http
from bot.services import Services
from training.store import JobStore

SECRET = "test-signing-secret"
PAPERS = [
    {"id": "photo", "title": "Photosynthesis in cyanobacteria under high light", "year": 2019,
     "authors": ["Ana Ortiz"], "abstract": "Cyanobacteria repair photosystem II when light is intense."},
    {"id": "lm", "title": "Scaling transformer language models", "year": 2021, "authors": ["Cara Diaz"],
     "abstract": "Larger transformer language models trained on more tokens predict text better."},
    {"id": "ice", "title": "Glacier melt and sea level rise", "year": 2015, "authors": ["Dan Berg"],
     "abstract": "Greenland glaciers lose ice mass faster as ocean temperatures increase."},
]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


def scrape(base: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one GET /metrics, parsed by prometheus_client."""
    status, text = get(base + "/metrics")
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, metric: str, /, **labels) -> float | None:
    return samples.get(key(metric, **labels))


def scrape_until(base: str, expected: dict, timeout: float = 30) -> dict:
    """Scrape until every (name, labels) -> value in `expected` holds (counts are recorded when the
    work after an ack ends, so slightly after Slack sees the answer)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(base)
        wrong = {k: samples.get(k) for k, v in expected.items() if samples.get(k) != v}
        if not wrong or time.monotonic() > deadline:
            assert not wrong, f"unexpected metric values (got {wrong})"
            return samples
        time.sleep(0.1)


def key(metric: str, /, **labels) -> tuple[str, tuple]:
    return metric, tuple(sorted(labels.items()))


@pytest.fixture
def bot(tmp_path, library_of):
    """The bot in HTTP mode (3-paper library, fake Slack, signed sender) with one queued training
    job in its job database, and a listener `/boom` whose work fails (an unexpected error)."""
    library = library_of(PAPERS)
    settings = Settings.model_validate({
        "index": {"dir": str(library.folder)}, "storage": {"database": str(tmp_path / "bot.sqlite")},
        "slack": {"api_retries": 2}, "training": {"database": str(tmp_path / "training.sqlite")},
    })
    store = JobStore(tmp_path / "training.sqlite")
    store.submit(name="ner", task="token-classification", spec={}, spec_text="")
    with FakeSlack() as fake:
        services = Services(settings, library=library)
        env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake.url}
        app = create_app(settings, services, env)

        @app.command("/boom")
        def boom(ack):
            ack()
            services.submit(lambda: 1 / 0, lambda exc: None)

        server = start_http(app, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{server.server_port}"
        yield fake, SlackSender(base, SECRET, fake), services, base
        server.shutdown()
        services.close()
    store.close()


def test_counters_histogram_and_gauges_on_the_bot_port(bot):
    fake, sender, services, base = bot
    assert get(base + "/healthz") == (200, "ok\n")
    for text in ("cyanobacteria light", "glacier melt", "x year:2023-2019"):  # the last: a user's mistake
        assert sender.command("/papers", text, channel_id="C1").status == 200
    assert sender.command("/boom", "", channel_id="C1").status == 200
    for _ in range(3):
        fake.wait_for(lambda m: m.source == "response_url", timeout=30)
    # An answer Slack refuses with 500 through every retry (2 retries + the first try): parked.
    fake.fail_next("chat.postMessage", status=500, retry_after=None, times=3)
    mention = {"type": "app_mention", "user": "U1", "channel": "C2", "ts": "1700000000.000100",
               "text": "<@U0LABMATE> glacier melt"}
    assert sender.event(mention, event_id="Ev1").status == 200
    deadline = time.monotonic() + 30
    while not services.state.pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(services.state.pending()) == 1
    # A 429: retried after Retry-After, then delivered.
    fake.fail_next("chat.postMessage", status=429, retry_after=1)
    assert sender.event(dict(mention, ts="1700000001.000100"), event_id="Ev2").status == 200
    fake.wait_for(lambda m: m.source == "chat.postMessage" and m.thread_ts == "1700000001.000100", timeout=30)

    samples = scrape_until(base, {
        key("labmate_slack_requests_total", kind="command", name="/papers", outcome="ok"): 3.0,
        key("labmate_slack_requests_total", kind="command", name="/papers", outcome="error"): 0.0,
        key("labmate_slack_requests_total", kind="command", name="/boom", outcome="error"): 1.0,
        key("labmate_slack_requests_total", kind="event", name="app_mention", outcome="ok"): 2.0,
        key("labmate_slack_ack_seconds_count", transport="http"): 6.0,  # 4 commands + 2 events
        key("labmate_slack_api_retries_total", method="chat.postMessage", reason="server_error"): 2.0,
        key("labmate_slack_api_retries_total", method="chat.postMessage", reason="ratelimited"): 1.0,
        key("labmate_slack_api_errors_total", method="chat.postMessage", error="fatal_error"): 1.0,  # the fake's 500 body
        key("labmate_index_papers"): 3.0,
        key("labmate_training_jobs", state="queued"): 1.0,
        key("labmate_training_jobs", state="running"): 0.0,
        key("labmate_training_store_up"): 1.0,
    })
    assert value(samples, "labmate_slack_requests_total", kind="command", name="/draft", outcome="ok") == 0.0
    assert value(samples, "labmate_index_passages") >= 3
    # Histogram buckets are cumulative and end with every observation; acks take well under 3 s.
    assert value(samples, "labmate_slack_ack_seconds_bucket", transport="http", le="+Inf") == 6.0
    assert value(samples, "labmate_slack_ack_seconds_bucket", transport="http", le="3.0") == 6.0
    assert 0 < value(samples, "labmate_slack_ack_seconds_sum", transport="http") < 18
    assert value(samples, "process_cpu_seconds_total") is not None
    assert get(base + "/healthz") == (200, "ok\n")


def test_standalone_server_healthz_and_metrics_without_opening_the_index(tmp_path):
    settings = Settings.model_validate({"index": {"dir": str(tmp_path / "idx")},
                                        "storage": {"database": str(tmp_path / "bot.sqlite")}})
    services = Services(settings)
    metrics = BotMetrics(services, training_database=tmp_path / "none.sqlite")
    server = serve_metrics(metrics, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert get(base + "/healthz") == (503, "index not open yet\n")
        samples = scrape(base)
        assert value(samples, "labmate_index_papers") is None and services._library is None  # not opened for it
        assert value(samples, "labmate_training_jobs", state="failed") == 0.0  # no database yet: no jobs
        assert not (tmp_path / "none.sqlite").exists()
        assert get(base + "/other")[0] == 404
    finally:
        server.shutdown()
        services.close()


def test_healthz_follows_the_training_worker(tmp_path, library_of):
    from training.worker import Worker

    settings = Settings.model_validate({"storage": {"database": str(tmp_path / "bot.sqlite")},
                                        "training": {"database": str(tmp_path / "training.sqlite"),
                                                     "runs_dir": str(tmp_path / "runs"), "poll_seconds": 0.1}})
    services = Services(settings, library=library_of(PAPERS))
    metrics = BotMetrics(services, training_database=settings.training.database)
    worker = Worker(settings.training).start()
    metrics.add_check("training worker stopped", lambda: worker.alive)
    server = serve_metrics(metrics, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert get(base + "/healthz") == (200, "ok\n")
        samples = scrape(base)
        assert value(samples, "labmate_index_papers") == 3.0
        assert value(samples, "labmate_training_workers") == 1.0
        worker.stop()
        assert get(base + "/healthz") == (503, "training worker stopped\n")
    finally:
        worker.stop()
        server.shutdown()
        services.close()


def test_socket_mode_acks_are_timed(tmp_path, library_of):
    from bot.devslack import SocketSender
    from bot.serve import socket_handler

    library = library_of(PAPERS)
    settings = Settings.model_validate({"index": {"dir": str(library.folder)},
                                        "storage": {"database": str(tmp_path / "bot.sqlite")},
                                        "training": {"url": "http://training.invalid:8600"}})
    with FakeSlack() as fake:
        services = Services(settings, library=library)
        env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_APP_TOKEN": "xapp-test", "SLACK_API_URL": fake.url}
        app = create_app(settings, services, env)
        handler = socket_handler(app, env)
        handler.connect()
        server = serve_metrics(app.labmate_metrics, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{server.server_port}"
        try:
            fake.wait_for_socket(10)
            envelope = SocketSender(fake).command("/papers", "sea level glaciers", channel_id="C1")
            assert fake.wait_for_ack(envelope, timeout=10)
            fake.wait_for(lambda m: m.source == "response_url", timeout=30)
            samples = scrape_until(base, {
                key("labmate_slack_requests_total", kind="command", name="/papers", outcome="ok"): 1.0,
                key("labmate_slack_ack_seconds_count", transport="socket"): 1.0,
            })
            assert value(samples, "labmate_slack_ack_seconds_count", transport="http") is None
            assert value(samples, "labmate_training_jobs", state="queued") is None  # jobs live elsewhere
        finally:
            server.shutdown()
            handler.client.auto_reconnect_enabled = False
            fake.close_sockets()
            handler.client.close()
            services.close()


def test_metrics_can_be_left_out(tmp_path):
    settings = Settings.model_validate({"storage": {"database": str(tmp_path / "bot.sqlite")}})
    services = Services(settings)
    try:
        app = create_app(settings, services, {"SLACK_BOT_TOKEN": "xoxb-test"}, verify_token=False, metrics=False)
        assert app.labmate_metrics is None
        assert json.dumps(settings.metrics.model_dump()) == '{"host": "127.0.0.1", "port": 9464}'
    finally:
        services.close()


def test_a_taken_port_is_an_os_error(tmp_path):
    import socket

    metrics = BotMetrics(process=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            serve_metrics(metrics, "127.0.0.1", taken.getsockname()[1])
