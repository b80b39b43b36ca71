"""bot.devslack: the fake Slack workspace, driven by the real slack_sdk / slack_bolt clients."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.webhook import WebhookClient

from bot.devslack import FakeSlack, SlackSender, SocketSender, sign

SECRET = "devslack-signing-secret"
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def fake():
    with FakeSlack() as server:
        yield server


@pytest.fixture
def client(fake):
    return WebClient(token="xoxb-test", base_url=fake.url)


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# -- server basics -----------------------------------------------------------------------------


def test_binds_loopback_on_a_free_port_and_releases_it():
    fake = FakeSlack()
    assert fake.url == f"http://127.0.0.1:{fake.port}/api/" and fake.port > 0
    with fake:
        assert WebClient(token="xoxb-test", base_url=fake.url).auth_test()["ok"]
    with socket.socket() as probe:  # stopped: nothing listens there any more
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", fake.port))


def test_auth_test_and_recorded_calls(fake, client):
    reply = client.auth_test()
    assert reply["user_id"] == fake.bot_user_id and reply["bot_id"] == fake.bot_id
    assert reply["team_id"] == fake.team_id and reply["url"].startswith("http://127.0.0.1:")
    [call] = fake.calls_to("auth.test")
    assert call.header("authorization") == "Bearer xoxb-test" and call.token == "xoxb-test"
    assert call.status == 200 and call.response["ok"] and call.timestamp <= time.time()


def test_post_update_ephemeral_and_delete_are_stored(fake, client):
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*found* 3 papers"}}]
    posted = client.chat_postMessage(channel="C1", text="found", blocks=blocks)
    assert posted["channel"] == "C1" and posted["message"]["blocks"] == blocks
    reply = client.chat_postMessage(channel="C1", text="in thread", thread_ts=posted["ts"])
    client.chat_update(channel="C1", ts=posted["ts"], text="updated")
    eph = client.chat_postEphemeral(channel="C1", user="U1", text="only you")
    other = client.chat_postMessage(channel="C2", text="elsewhere")
    client.chat_delete(channel="C2", ts=other["ts"])

    first, threaded, ephemeral = fake.messages("C1")
    assert (first.ts, first.text, first.blocks, first.edits) == (posted["ts"], "updated", blocks, 1)
    assert "*found* 3 papers" in first.plain_text and first.user == fake.bot_user_id
    assert threaded.thread_ts == posted["ts"] and reply["message"]["thread_ts"] == posted["ts"]
    assert ephemeral.ephemeral and ephemeral.visible_to == "U1" and ephemeral.ts == eph["message_ts"]
    assert fake.messages("C2") == [] and len(fake.messages()) == 3
    assert fake.calls_to("chat.update")[0].params["ts"] == posted["ts"]  # JSON body parsed


def test_errors_like_slack(fake, client):
    with pytest.raises(SlackApiError) as bad:
        WebClient(token="xoxb-wrong", base_url=fake.url).chat_postMessage(channel="C1", text="x")
    assert bad.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as app_token:
        WebClient(token="xapp-test", base_url=fake.url).auth_test()
    assert app_token.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as missing:
        client.chat_update(channel="C1", ts="1.000001", text="x")
    assert missing.value.response["error"] == "message_not_found"
    with pytest.raises(SlackApiError):
        client.api_call("no.suchMethod")
    assert fake.calls_to("no.suchMethod")[0].response == {"ok": False, "error": "unknown_method"}
    assert fake.messages() == []


def test_form_encoded_params_are_parsed(fake, client):
    reply = client.api_call("chat.postMessage", params={
        "channel": "C9", "text": "form", "blocks": json.dumps([{"type": "divider"}])})
    assert reply["ok"]
    [message] = fake.messages("C9")
    assert message.blocks == [{"type": "divider"}]
    assert fake.calls_to("chat.postMessage")[0].params["channel"] == "C9"


def test_users_and_channels(fake, client):
    fake.add_user("U7", "ada", real_name="Ada Lovelace", is_admin=True)
    assert client.users_info(user="U7")["user"]["real_name"] == "Ada Lovelace"
    assert client.users_info(user="U8")["user"]["name"] == "u8"  # lenient: made up on first use
    fake.add_channel("C5", "journal-club")
    assert client.conversations_info(channel="C5")["channel"]["name"] == "journal-club"
    assert client.conversations_info(channel="D5")["channel"]["is_im"]
    with FakeSlack(strict=True) as strict:
        with pytest.raises(SlackApiError) as err:
            WebClient(token="xoxb-test", base_url=strict.url).chat_postMessage(channel="C1", text="x")
        assert err.value.response["error"] == "channel_not_found"


# -- failure injection -------------------------------------------------------------------------


def test_rate_limit_is_retried_after_retry_after(fake):
    fake.fail_next("chat.postMessage", status=429, retry_after=1)
    retrying = WebClient(token="xoxb-test", base_url=fake.url,
                         retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
    started = time.monotonic()
    assert retrying.chat_postMessage(channel="C1", text="after the limit")["ok"]
    assert time.monotonic() - started >= 1.0
    first, second = fake.calls_to("chat.postMessage")
    assert (first.status, second.status) == (429, 200)
    assert [m.text for m in fake.messages()] == ["after the limit"]


def test_server_error_is_retried(fake):
    fake.fail_next("chat.postMessage", status=500)
    plain = WebClient(token="xoxb-test", base_url=fake.url, retry_handlers=[])
    with pytest.raises(SlackApiError) as err:
        plain.chat_postMessage(channel="C1", text="x")
    assert err.value.response.status_code == 500
    fake.fail_next("chat.postMessage", status=500, times=1)
    retrying = WebClient(token="xoxb-test", base_url=fake.url,
                         retry_handlers=[ServerErrorRetryHandler(max_retry_count=1)])
    assert retrying.chat_postMessage(channel="C1", text="second try")["ok"]
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [500, 500, 200]


def test_fail_next_with_an_api_error(fake, client):
    fake.fail_next("chat.postMessage", error="not_in_channel", times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            client.chat_postMessage(channel="C1", text="x")
        assert err.value.response["error"] == "not_in_channel"
    assert client.chat_postMessage(channel="C1", text="x")["ok"]


# -- files -------------------------------------------------------------------------------------


def test_files_upload_v2_end_to_end(fake, client):
    data = b"\x89PNG\r\n\x1a\n fake image bytes"
    reply = client.files_upload_v2(content=data, filename="x.png", channel="C1",
                                   initial_comment="the plot", thread_ts="1.000001")
    info = reply["file"]
    assert info["name"] == "x.png" and info["filetype"] == "png" and info["size"] == len(data)
    assert info["mimetype"] == "image/png" and "C1" in info["channels"]
    [message] = fake.messages("C1")
    assert message.files[0]["id"] == info["id"] and message.text == "the plot"
    assert message.thread_ts == "1.000001" and message.source == "files.completeUploadExternal"
    assert client.files_info(file=info["id"])["file"]["url_private"] == info["url_private"]
    assert get(info["url_private_download"], "xoxb-test") == (200, data)
    assert get(info["url_private"])[0] == 401
    assert get(info["url_private"], "xoxb-wrong")[0] == 401
    assert fake.file(info["id"]).data == data


def test_hosted_files_need_the_bot_token(fake, client):
    info = fake.add_file("notes on attention.pdf", b"%PDF-1.4 ...", user="U1")
    assert info["filetype"] == "pdf" and info["user"] == "U1"
    assert info["url_private"].startswith(fake.base_url) and "%20" in info["url_private"]
    assert get(info["url_private"], "xoxb-test") == (200, b"%PDF-1.4 ...")
    assert get(info["url_private_download"])[0] == 401
    assert client.files_info(file=info["id"])["file"]["name"] == "notes on attention.pdf"
    with pytest.raises(SlackApiError):
        client.files_info(file="F404")
    assert [c.status for c in fake.calls_to("file_download")] == [200, 401]


# -- response_url ------------------------------------------------------------------------------


def test_response_url_posts_become_messages(fake, client):
    url = fake.new_response_url(channel="C1", user="U1")
    WebhookClient(url).send(text="working on it")
    WebhookClient(url).send(text="done", response_type="in_channel", blocks=[{"type": "divider"}])
    WebhookClient(url).send(text="done, replaced", replace_original=True)
    ephemeral, public = fake.messages("C1")
    assert ephemeral.ephemeral and ephemeral.visible_to == "U1" and ephemeral.source == "response_url"
    assert (public.text, public.edits, public.ephemeral) == ("done, replaced", 1, False)
    assert fake.calls_to("response_url")[0].params["text"] == "working on it"

    clicked = client.chat_postMessage(channel="C2", text="pick one")["ts"]
    hook = fake.new_response_url(channel="C2", user="U1", message_ts=clicked)
    WebhookClient(hook).send(text="picked", replace_original=True)
    assert [(m.ts, m.text) for m in fake.messages("C2")] == [(clicked, "picked")]
    WebhookClient(hook).send(delete_original=True)
    assert fake.messages("C2") == []


def test_wait_for_wakes_on_new_messages(fake, client):
    timer = threading.Timer(0.2, lambda: client.chat_postMessage(channel="C1", text="late"))
    timer.start()
    assert fake.wait_for(lambda m: m.text == "late", timeout=5).channel == "C1"
    assert fake.wait_for_call("chat.postMessage").status == 200
    with pytest.raises(TimeoutError, match="late"):
        fake.wait_for(lambda m: m.text == "never", timeout=0.2)


# -- signed requests ---------------------------------------------------------------------------


@pytest.fixture
def app_endpoint():
    """A stand-in app that checks signatures with slack_sdk's verifier; records what it got."""
    received: list[dict] = []
    verifier = SignatureVerifier(SECRET)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            valid = verifier.is_valid_request(body, dict(self.headers.items()))
            received.append({"path": self.path, "body": body, "headers": dict(self.headers.items())})
            self.send_response(200 if valid else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def test_signature_matches_slack_sdk():
    verifier = SignatureVerifier(SECRET)
    now = str(int(time.time()))
    assert verifier.generate_signature(timestamp=now, body="a=b") == sign(SECRET, b"a=b", now)


def test_signed_requests_are_accepted_and_stale_or_forged_ones_rejected(fake, app_endpoint):
    url, received = app_endpoint
    sender = SlackSender(url, SECRET, fake)
    status, headers, body = sender.command("/papers", "protein folding", user_id="U1", channel_id="C1")
    assert status == 200 and received[-1]["path"] == "/slack/events"
    fields = {k: v[0] for k, v in parse_qs(received[-1]["body"].decode()).items()}
    assert fields["command"] == "/papers" and fields["text"] == "protein folding"
    assert fields["response_url"].startswith(fake.base_url + "/response/") and fields["trigger_id"]

    assert sender.event({"type": "app_mention", "text": "<@U0LABMATE> hi", "user": "U1"},
                        event_id="Ev1", retry_num=1, retry_reason="http_timeout").status == 200
    envelope = json.loads(received[-1]["body"])
    assert envelope["type"] == "event_callback" and envelope["event_id"] == "Ev1"
    assert envelope["team_id"] == fake.team_id and envelope["event"]["event_ts"]
    assert received[-1]["headers"]["X-Slack-Retry-Num"] == "1"

    assert sender.action("pick", "p1", user_id="U1", channel_id="C1", message_ts="1.5").status == 200
    payload = json.loads(parse_qs(received[-1]["body"].decode())["payload"][0])
    assert payload["type"] == "block_actions" and payload["actions"][0]["value"] == "p1"
    assert payload["container"]["message_ts"] == "1.5"
    assert sender.url_verification("xyz").status == 200

    assert sender.command("/papers", "x", timestamp=time.time() - 600).status == 401
    assert sender.command("/papers", "x", signature="v0=" + "0" * 64).status == 401


# -- Socket Mode -------------------------------------------------------------------------------


def close_quickly(fake, socket_client):
    """Close from the server side first: the builtin client's close() alone waits out a 3 s recv."""
    socket_client.auto_reconnect_enabled = False
    fake.close_sockets()
    socket_client.close()


def test_socket_mode_round_trip_with_the_builtin_client(fake):
    socket_client = SocketModeClient(app_token="xapp-test",
                                     web_client=WebClient(base_url=fake.url, token="xoxb-test"))
    received = []

    def listener(client, request):
        received.append(request)
        client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))

    socket_client.socket_mode_request_listeners.append(listener)
    try:
        socket_client.connect()
        fake.wait_for_socket()
        big = "x" * 70_000  # longer than one frame length field and many socket reads
        envelope_id = fake.socket_send("events_api", {"type": "event_callback", "event": {
            "type": "message", "text": big}})
        ack = fake.wait_for_ack(envelope_id, timeout=5)
        assert ack.envelope_id == envelope_id
        assert received[0].type == "events_api" and received[0].payload["event"]["text"] == big
        assert fake.calls_to("apps.connections.open")[0].token == "xapp-test"
        assert fake.envelopes[0]["accepts_response_payload"] is False
    finally:
        close_quickly(fake, socket_client)
    assert fake.socket_clients == 0


def test_socket_mode_client_reconnects_on_disconnect(fake):
    socket_client = SocketModeClient(app_token="xapp-test",
                                     web_client=WebClient(base_url=fake.url, token="xoxb-test"))
    try:
        socket_client.connect()
        fake.socket_disconnect("refresh_requested")
        fake.wait_for(lambda c: c.method == "apps.connections.open", among="calls")
        # slack_sdk reconnects from its own worker threads: on a loaded 2-core CI box that has
        # taken more than 5 s, so the wait is generous (a real failure still fails, later).
        fake.wait_for(lambda c: len(fake.calls_to("apps.connections.open")) >= 2, among="calls", timeout=30)
        fake.wait_for_socket(timeout=30)
    finally:
        close_quickly(fake, socket_client)


def test_socket_mode_needs_a_ticket(fake):
    status, body = get(f"{fake.base_url}/link/?ticket=forged")
    assert status == 401
    with pytest.raises(SlackApiError) as err:
        WebClient(token="xoxb-test", base_url=fake.url).apps_connections_open(app_token="xoxb-test")
    assert err.value.response["error"] == "not_allowed_token_type"


def test_bolt_app_over_socket_mode(fake):
    from slack_bolt import App
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    app = App(client=WebClient(token="xoxb-test", base_url=fake.url), signing_secret=SECRET)

    @app.command("/papers")
    def papers(ack, respond, say, command):
        ack(text=f"searching {command['text']}")
        say(f"results for {command['text']}")
        respond("only for you")

    handler = SocketModeHandler(app, app_token="xapp-test")
    handler.connect()
    try:
        envelope_id = SocketSender(fake).command("/papers", "attention", user_id="U1", channel_id="C1")
        ack = fake.wait_for_ack(envelope_id)
        assert ack.payload == {"text": "searching attention"}
        said = fake.wait_for(lambda m: m.source == "chat.postMessage")
        assert said.text == "results for attention" and said.channel == "C1"
        responded = fake.wait_for(lambda m: m.source == "response_url")
        assert responded.ephemeral and responded.visible_to == "U1"
    finally:
        close_quickly(fake, handler.client)


def test_bolt_app_over_http(fake):
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from slack_bolt import App
    from slack_bolt.adapter.wsgi import SlackRequestHandler

    app = App(client=WebClient(token="xoxb-test", base_url=fake.url), signing_secret=SECRET)

    @app.action("pick")
    def pick(ack, respond, body):
        ack()
        respond(text=f"picked {body['actions'][0]['value']}", replace_original=True)

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, SlackRequestHandler(app), handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sender = SlackSender(f"http://127.0.0.1:{server.server_port}", SECRET, fake)
        ts = WebClient(token="xoxb-test", base_url=fake.url).chat_postMessage(
            channel="C1", text="choose", blocks=[{"type": "actions", "block_id": "b", "elements": [
                {"type": "button", "action_id": "pick", "value": "p1",
                 "text": {"type": "plain_text", "text": "P1"}}]}])["ts"]
        assert sender.action("pick", "p1", user_id="U1", channel_id="C1", message_ts=ts).status == 200
        fake.wait_for(lambda m: m.text == "picked p1" and m.ts == ts)
        assert sender.url_verification("abc").json() == {"challenge": "abc"}
        assert sender.command("/papers", "x", signature="v0=bad").status == 401
    finally:
        server.shutdown()
        server.server_close()
