"""The OpenAI-compatible backend against a fake streaming server, and llama.cpp's setup errors.
No model is loaded: these run in a few seconds."""

from __future__ import annotations

import json
import socket
import sys
import time

import pytest

from core.errors import ConfigError
from drafting.backends.llamacpp import LlamaCppGenerator
from drafting.backends.openai_compat import OpenAICompatGenerator, StopWatcher
from drafting.generator import GenerationError, make_generator
from drafting.settings import DraftingSettings
from tests.drafting.fake_llm_server import FakeLLMServer

ASK = [{"role": "system", "content": "You write papers."}, {"role": "user", "content": "Say hi"}]


def fixed(text: str):
    return lambda messages: text


def client(server: FakeLLMServer, **options) -> OpenAICompatGenerator:
    options = {"timeout": 5.0, "backoff": 0.01, **options}
    return OpenAICompatGenerator(server.url, options.pop("model", "fake-model"), **options)


def test_text_streams_piece_by_piece_while_the_server_is_still_writing():
    received: list[tuple[float, str]] = []
    with FakeLLMServer(fixed("Contrastive learning helps citation embeddings a lot"), delay=0.05) as server:
        result = client(server).generate(ASK, max_new_tokens=50,
                                         on_text=lambda piece: received.append((time.monotonic(), piece)))
    pieces = [piece for _, piece in received]
    assert pieces == ["Contrastive", " learning", " helps", " citation", " embeddings", " a", " lot"]
    assert "".join(pieces) == result.text == "Contrastive learning helps citation embeddings a lot"
    # The first piece was shown before the server had even written its last one.
    assert received[0][0] < server.sent_at[-1] - 0.1
    assert result.tokens == 7  # usage.completion_tokens from the final chunk
    assert result.seconds >= 0.3


def test_request_carries_model_messages_limits_stop_stream_and_key():
    with FakeLLMServer(api_key="secret") as server:
        result = client(server, model="qwen", api_key="secret", temperature=0.3).generate(
            ASK, max_new_tokens=12, stop=["\n\n", "References"])
    body, headers = server.requests[0], server.headers[0]
    assert body["model"] == "qwen" and body["messages"] == ASK
    assert body["max_tokens"] == 12 and body["temperature"] == 0.3
    assert body["stop"] == ["\n\n", "References"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert headers["Authorization"] == "Bearer secret"
    assert headers["Content-Type"] == "application/json"
    assert result.text == "You said: Say hi"


def test_no_stop_field_without_stops_and_at_most_four_sent():
    with FakeLLMServer() as server:
        generator = client(server)
        generator.generate(ASK, max_new_tokens=5)
        generator.generate(ASK, max_new_tokens=5, stop=["a1", "", "a2", "a3", "a4", "a5"])
    assert "stop" not in server.requests[0] and "Authorization" not in server.headers[0]
    assert server.requests[1]["stop"] == ["a1", "a2", "a3", "a4"]


def test_key_comes_from_the_environment_variable_the_settings_name():
    with FakeLLMServer(api_key="k", models=["m"]) as server:
        settings = DraftingSettings(backend="openai", url=server.url + "/", model="m")
        generator = make_generator(settings, env={"LABMATE_LLM_API_KEY": "k"})
        assert generator.name == "openai:m"
        assert generator.generate(ASK, max_new_tokens=8).text == "You said: Say hi"
        assert server.headers[0]["Authorization"] == "Bearer k"

        other = DraftingSettings(backend="openai", url=server.url, model="m", api_key_env="LAB_VLLM_KEY")
        with pytest.raises(GenerationError) as missing:
            make_generator(other, env={"LABMATE_LLM_API_KEY": "k"}).generate(ASK, max_new_tokens=8)
    assert "API key" in str(missing.value) and "LAB_VLLM_KEY" in str(missing.value)


def test_max_new_tokens_and_usage_count():
    with FakeLLMServer(fixed("one two three four five six")) as server:
        result = client(server).generate(ASK, max_new_tokens=3)
    assert result.text == "one two three" and result.tokens == 3


def test_stop_cut_client_side_when_the_server_ignores_it():
    shown: list[str] = []
    reply = "We propose a method. END " + " ".join(["more"] * 40)
    with FakeLLMServer(fixed(reply), delay=0.02, ignore_stop=True) as server:
        started = time.monotonic()
        result = client(server).generate(ASK, max_new_tokens=100, stop=["END"], on_text=shown.append)
        elapsed = time.monotonic() - started
    assert result.text == "We propose a method. "
    assert "".join(shown) == result.text and "END" not in "".join(shown)
    assert result.tokens == 5  # content chunks read: the server's usage never came
    assert elapsed < 0.02 * 20  # stopped reading at the stop, did not wait for the 40 more words


def test_stop_string_split_across_pieces_never_reaches_on_text():
    shown: list[str] = []
    with FakeLLMServer(fixed("one two three four"), ignore_stop=True) as server:
        result = client(server).generate(ASK, max_new_tokens=10, stop=["two thr"], on_text=shown.append)
    assert result.text == "one " and "".join(shown) == "one "
    assert "two" not in "".join(shown)


def test_held_back_text_is_shown_when_no_stop_follows():
    shown: list[str] = []
    with FakeLLMServer(fixed("one two three"), ignore_stop=True) as server:
        result = client(server).generate(ASK, max_new_tokens=10, stop=["three four"], on_text=shown.append)
    assert result.text == "one two three" and "".join(shown) == result.text


def test_server_side_stop_gives_the_same_text():
    with FakeLLMServer(fixed("We propose a method. END more")) as server:
        result = client(server).generate(ASK, max_new_tokens=100, stop=["END"])
    assert result.text == "We propose a method. "


def test_stop_watcher_passes_text_on_as_soon_as_it_cannot_be_a_stop():
    shown: list[str] = []
    watcher = StopWatcher(["\n\n", "", "[9"], shown.append)
    assert not watcher.feed("Text [")
    assert shown == ["Text "]
    assert not watcher.feed("1] more\n")
    assert shown == ["Text ", "[1] more"]
    assert watcher.feed("\nignored")
    assert watcher.finish() == "Text [1] more" and "".join(shown) == "Text [1] more"
    assert watcher.feed("late") and watcher.pieces == 3  # nothing is taken after a stop


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_failure_before_any_text_is_retried(status):
    with FakeLLMServer() as server:
        server.fail_next(status)
        result = client(server).generate(ASK, max_new_tokens=8)
    assert result.text == "You said: Say hi" and len(server.requests) == 2


def test_persistent_server_error_gives_up_after_the_retries():
    with FakeLLMServer() as server:
        server.fail_next(500, times=10)
        with pytest.raises(GenerationError) as failed:
            client(server, retries=2).generate(ASK, max_new_tokens=8)
    assert len(server.requests) == 3
    message = str(failed.value)
    assert "HTTP 500" in message and "Fake failure 500" in message and server.url in message


def test_server_down_says_to_start_it_or_switch_backend():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(GenerationError) as down:
        OpenAICompatGenerator(url, "m", backoff=0.01).generate(ASK, max_new_tokens=8)
    message = str(down.value)
    assert url in message and "not answering" in message
    assert "vLLM" in message and 'backend = "transformers"' in message


def test_rejected_key_names_the_environment_variable():
    with FakeLLMServer(api_key="right") as server:
        with pytest.raises(GenerationError) as rejected:
            client(server, api_key="wrong", key_env="MY_LLM_KEY").generate(ASK, max_new_tokens=8)
    message = str(rejected.value)
    assert "rejected the API key" in message and "MY_LLM_KEY" in message and "401" in message
    assert len(server.requests) == 1  # not retried


def test_unknown_model_names_model_and_url():
    with FakeLLMServer(models=["llama-3-8b"]) as server:
        with pytest.raises(GenerationError) as unknown:
            client(server, model="gpt-7").generate(ASK, max_new_tokens=8)
        with pytest.raises(GenerationError) as wrong_url:
            OpenAICompatGenerator(server.url.removesuffix("/v1") + "/api", "llama-3-8b").generate(
                ASK, max_new_tokens=8)
    assert "'gpt-7'" in str(unknown.value) and server.url in str(unknown.value)
    assert "does not exist" in str(unknown.value)
    assert "/api" in str(wrong_url.value) and "404" in str(wrong_url.value) and "/v1" in str(wrong_url.value)


@pytest.mark.parametrize("body, content_type", [
    (b"<html><body>It works!</body></html>", "text/html"),
    (b"data: <html>\n\n", "text/event-stream"),
    (b"", "text/event-stream"),
    (b'{"status": "ok"}', "application/json"),
])
def test_a_server_that_is_not_openai_compatible(body, content_type):
    with FakeLLMServer() as server:
        server.respond_next(200, body, content_type)
        with pytest.raises(GenerationError) as garbage:
            client(server).generate(ASK, max_new_tokens=8)
    assert "does not speak the OpenAI chat API" in str(garbage.value) and server.url in str(garbage.value)


def test_an_error_event_inside_the_stream():
    with FakeLLMServer() as server:
        server.respond_next(200, b'data: {"error": {"message": "CUDA out of memory"}}\n\n', "text/event-stream")
        with pytest.raises(GenerationError) as failed:
            client(server).generate(ASK, max_new_tokens=8)
    assert "CUDA out of memory" in str(failed.value)


def test_a_server_that_ignores_stream_still_works():
    completion = {"object": "chat.completion", "usage": {"completion_tokens": 2},
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "Plain reply"}}]}
    shown: list[str] = []
    with FakeLLMServer() as server:
        server.respond_next(200, json.dumps(completion).encode(), "application/json")
        result = client(server).generate(ASK, max_new_tokens=8, on_text=shown.append)
    assert result.text == "Plain reply" and shown == ["Plain reply"] and result.tokens == 2


def test_a_slow_server_times_out_without_retrying():
    with FakeLLMServer(delay=3.0) as server:
        started = time.monotonic()
        with pytest.raises(GenerationError) as slow:
            client(server, timeout=0.3).generate(ASK, max_new_tokens=8)
        assert time.monotonic() - started < 2.0
    assert "timed out after 0.3 s" in str(slow.value) and "timeout" in str(slow.value)
    assert len(server.requests) == 1


def test_a_url_that_is_not_http_is_a_config_error():
    with pytest.raises(ConfigError, match="http"):
        OpenAICompatGenerator("127.0.0.1:8000/v1", "m")


def test_llamacpp_without_the_package_says_what_to_install(tmp_path, monkeypatch):
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if llama-cpp-python were not installed
    generator = LlamaCppGenerator(str(model))
    assert generator.name == "llamacpp:tiny.gguf"
    with pytest.raises(ConfigError) as missing:
        generator.generate(ASK, max_new_tokens=8)
    assert "pip install llama-cpp-python" in str(missing.value)


def test_llamacpp_needs_a_gguf_not_a_hugging_face_folder(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError) as folder:
        LlamaCppGenerator(str(tmp_path)).generate(ASK, max_new_tokens=8)
    assert ".gguf" in str(folder.value) and "Hugging Face" in str(folder.value)


@pytest.mark.parametrize("reply, expected", [
    ("Smith et al. found that aspirin helps.", " aspirin helps."),  # the model repeats the prefix
    ("aspirin helps.", "aspirin helps."),                             # it continues it directly
    ("Smith", "Smith"),                                               # it stops inside the prefix
])
def test_a_prefix_is_asked_for_and_its_repetition_removed(reply, expected):
    pieces: list[str] = []
    with FakeLLMServer(fixed(reply)) as server:
        result = client(server).generate(ASK, max_new_tokens=50, on_text=pieces.append,
                                         prefix="Smith et al. found that")
    assert server.requests[0]["messages"][-1]["content"].endswith('Begin the sentence with "Smith et al. found that".')
    assert result.text == expected.strip() or result.text == expected
    assert "".join(pieces).strip() == result.text.strip()
