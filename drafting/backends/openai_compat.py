"""A `Generator` that talks to any OpenAI-compatible chat server (vLLM, Ollama, llama.cpp server).

Standard library only: one streaming POST to `{url}/chat/completions`, read as server-sent
events. Stop strings are also enforced here, because servers differ in how (and whether) they
honour them; `StopWatcher` is shared with the llama.cpp backend.
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Sequence
from urllib.parse import urlsplit

from core.errors import ConfigError
from drafting.generator import Generation, GenerationError, Message, OnText, PrefixAsked, cut_at_stop

MAX_SERVER_STOPS = 4  # OpenAI rejects more; the rest are enforced client-side only
ERROR_BODY_LIMIT = 64_000  # enough for any error message; more is not worth reading
WHOLE_BODY_LIMIT = 16_000_000


class StopWatcher:
    """Passes streamed text on to `on_text` while holding back any tail that could still grow
    into a stop string, so that nothing at or after a stop string is ever shown."""

    def __init__(self, stop: Sequence[str], on_text: OnText | None = None):
        self.stop = [s for s in stop if s]
        self.on_text = on_text
        self.text = ""
        self.pieces = 0  # pieces with content: the token count when the model reports none
        self.stopped = False
        self._sent = 0

    def feed(self, piece: str | None) -> bool:
        """Add one piece of text; True once the text holds a stop string (stop reading then)."""
        if not piece or self.stopped:
            return self.stopped
        self.pieces += 1
        self.text += piece
        cut, self.stopped = cut_at_stop(self.text, self.stop)
        if self.stopped:
            self.text = cut
            self._send(len(cut))
        else:
            self._send(len(self.text) - self._held_back())
        return self.stopped

    def finish(self) -> str:
        """The whole text once the stream has ended; passes on whatever was still held back."""
        self._send(len(self.text))
        return self.text

    def _held_back(self) -> int:
        """Length of the longest tail of the text that is the start of some stop string."""
        longest = max((len(s) for s in self.stop), default=1)
        for n in range(min(len(self.text), longest - 1), 0, -1):
            tail = self.text[-n:]
            if any(s.startswith(tail) for s in self.stop):
                return n
        return 0

    def _send(self, end: int) -> None:
        if end > self._sent and self.on_text is not None:
            self.on_text(self.text[self._sent:end])
        self._sent = max(self._sent, end)


def delta_content(chunk: dict) -> str:
    """The new text in one streamed chat chunk; role-only and final chunks have none."""
    choices = chunk.get("choices") or []
    first = choices[0] if choices and isinstance(choices[0], dict) else {}
    return (first.get("delta") or {}).get("content") or ""


class OpenAICompatGenerator:
    """A chat model behind an OpenAI-compatible HTTP server, streamed piece by piece."""

    def __init__(self, url: str, model: str, api_key: str | None = None, temperature: float = 0.0,
                 timeout: float = 120.0, retries: int = 2, key_env: str = "LABMATE_LLM_API_KEY",
                 backoff: float = 0.5):
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"[drafting] url {url!r} is not an http(s) URL: set it to the model server's "
                              "OpenAI-compatible base URL, e.g. \"http://127.0.0.1:8000/v1\".")
        self._parts = parts
        self.model, self.api_key, self.key_env = model, api_key, key_env
        self.temperature, self.timeout = temperature, timeout
        self.retries, self.backoff = retries, backoff
        self.name = f"openai:{model}"

    def generate(self, messages: Sequence[Message], *, max_new_tokens: int, stop: Sequence[str] = (),
                 on_text: OnText | None = None, prefix: str = "") -> Generation:
        """Stream one reply; `on_text` sees each new piece as it arrives, never text past a stop.
        Servers differ in answer prefill, so a `prefix` is asked for in the prompt."""
        start = time.monotonic()
        asked = PrefixAsked(prefix, on_text)
        watcher = StopWatcher(stop, asked.feed)
        conn, response = self._open(self._body(asked.messages(messages), max_new_tokens, watcher.stop))
        try:
            usage = self._read(response, watcher)
        finally:
            # Closing mid-stream is how a client-side stop tells the server to stop writing.
            conn.close()
        text = asked.cut(watcher.finish())
        asked.flush()
        tokens = usage if usage is not None else watcher.pieces
        return Generation(text, tokens, time.monotonic() - start)

    def _body(self, messages: Sequence[Message], max_new_tokens: int, stop: list[str]) -> bytes:
        body = {"model": self.model, "messages": [dict(m) for m in messages], "max_tokens": max_new_tokens,
                "temperature": self.temperature, "stream": True, "stream_options": {"include_usage": True}}
        if stop:
            body["stop"] = stop[:MAX_SERVER_STOPS]
        return json.dumps(body).encode()

    def _open(self, body: bytes) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """POST with retries; retrying is safe here because nothing has been streamed yet."""
        failure: GenerationError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * attempt)
            conn = self._connection()
            try:
                conn.request("POST", self._parts.path + "/chat/completions", body, self._headers())
                response = conn.getresponse()
            except TimeoutError:
                conn.close()
                raise self._timed_out() from None
            except OSError as exc:  # refused, reset, unknown host, closed without a reply
                conn.close()
                failure = self._unreachable(exc)
                continue
            except http.client.HTTPException as exc:
                conn.close()
                raise self._not_openai(f"a broken HTTP reply: {exc!r}") from None
            if response.status == 200:
                return conn, response
            detail = _error_detail(response.read(ERROR_BODY_LIMIT))
            conn.close()
            failure = self._status_error(response.status, detail, attempt + 1)
            if response.status != 429 and response.status < 500:
                break
        raise failure

    def _connection(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
        return kind(self._parts.hostname, self._parts.port, timeout=self.timeout)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _read(self, response: http.client.HTTPResponse, watcher: StopWatcher) -> int | None:
        """Feed the reply to `watcher`; the completion tokens the server counted, if it did."""
        try:
            if "text/event-stream" not in (response.getheader("Content-Type") or ""):
                return self._read_whole(response, watcher)
            return self._read_events(response, watcher)
        except TimeoutError:
            raise self._timed_out() from None
        except (OSError, http.client.HTTPException) as exc:
            raise GenerationError(f"The model server at {self.url} broke off its reply ({exc!r}). "
                                  "Check its log, then try again.") from None

    def _read_events(self, response: http.client.HTTPResponse, watcher: StopWatcher) -> int | None:
        usage, events = None, 0
        for data in _sse_data(response):
            if data.strip() == "[DONE]":
                break
            chunk = self._parse(data)
            events += 1
            if chunk.get("error"):
                raise GenerationError(f"The model server at {self.url} failed while writing "
                                      f"({_error_detail(data.encode())}). Check its log, then try again.")
            usage = _completion_tokens(chunk, usage)
            if watcher.feed(delta_content(chunk)):
                break  # the server may not honour stop: don't wait for text nobody will see
        if not events:
            raise self._not_openai("an empty event stream")
        return usage

    def _read_whole(self, response: http.client.HTTPResponse, watcher: StopWatcher) -> int | None:
        """Some servers ignore `stream`; accept a plain chat.completion, reject anything else."""
        data = self._parse(response.read(WHOLE_BODY_LIMIT).decode("utf-8", errors="replace"))
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise self._not_openai(f"JSON without choices: {json.dumps(data)[:120]}") from None
        watcher.feed(content or "")
        return _completion_tokens(data, None)

    def _parse(self, data: str) -> dict:
        try:
            chunk = json.loads(data)
        except ValueError:
            raise self._not_openai(repr(data[:120])) from None
        if not isinstance(chunk, dict):
            raise self._not_openai(repr(data[:120]))
        return chunk

    def _unreachable(self, exc: Exception) -> GenerationError:
        return GenerationError(
            f"The model server at {self.url} is not answering ({exc}). Start it (vLLM, Ollama or llama.cpp "
            "server) or set [drafting] backend = \"transformers\" in config.toml.")

    def _timed_out(self) -> GenerationError:
        return GenerationError(
            f"The model server at {self.url} timed out after {self.timeout:g} s without answering. It may be "
            "busy or the model too slow: try again, or raise [drafting] timeout in config.toml.")

    def _not_openai(self, what: str) -> GenerationError:
        return GenerationError(
            f"The server at {self.url} does not speak the OpenAI chat API (it sent {what}). Set [drafting] url "
            "to the server's OpenAI-compatible base URL, usually ending in /v1.")

    def _status_error(self, status: int, detail: str, tries: int) -> GenerationError:
        said = f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
        if status in (401, 403):
            if not self.api_key:
                return GenerationError(f"The model server at {self.url} needs an API key ({said}): set the "
                                       f"environment variable {self.key_env}.")
            return GenerationError(f"The model server at {self.url} rejected the API key ({said}): set the "
                                   f"environment variable {self.key_env} to a key it accepts.")
        if status == 404:
            return GenerationError(
                f"The model server at {self.url} does not know model {self.model!r} or that URL ({said}). "
                "Check [drafting] model (the name the server serves) and url (usually ending in /v1).")
        if status == 429 or status >= 500:
            return GenerationError(f"The model server at {self.url} failed {tries} time(s) ({said}). "
                                   "Check its log (out of memory? overloaded?), then try again.")
        return GenerationError(f"The model server at {self.url} refused the request ({said}).")


def _sse_data(response: http.client.HTTPResponse):
    """The `data` payload of each server-sent event (comments, ids and event names are skipped)."""
    lines: list[str] = []
    while raw := response.readline():
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))
        elif not line and lines:
            yield "\n".join(lines)
            lines = []
    if lines:
        yield "\n".join(lines)


def _completion_tokens(chunk: dict, default: int | None) -> int | None:
    """usage.completion_tokens where the chunk carries it (OpenAI sends usage: null until the end)."""
    tokens = (chunk.get("usage") or {}).get("completion_tokens")
    return tokens if isinstance(tokens, int) else default


def _error_detail(body: bytes) -> str:
    """The message in an error body: OpenAI's {"error": {"message"}}, vLLM's {"message"},
    Ollama's {"error": "..."}, FastAPI's {"detail"}, or the start of plain text."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:200]
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        error = error.get("message") or error.get("detail") or error
    return str(error)[:200]
