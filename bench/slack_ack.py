"""Slash-command ack latency and answer delivery of the real bot, end to end over HTTP.

Usage:  .venv/bin/python bench/slack_ack.py [--commands 200] [--concurrency 50] [--docs 200]
                                            [--warmup 5] [--timeout 120] [--profile]

What happens, all in this one process:

1. A FakeSlack (bot.devslack) serves the Web API and the response_urls.
2. A real index is built in a temporary folder from the first `--docs` SciFact abstracts
   (`shared/data/scifact/corpus.jsonl` next to the repository, or LABMATE_TEST_DATA) with
   `retrieval.ingest.add_paths`, and the embedding model is warmed up (`Services.warm_up`).
3. The real bot (`bot.app.create_app` + `bot.serve.start_http`, HTTP mode, signed requests) is
   started against the fake. `--warmup` commands are sent first and answered (not measured:
   they pay for Bolt's first auth.test and lazy imports).
4. `--commands` signed `/papers <claim>` requests (SciFact train claims) are sent, `--concurrency`
   at a time from a thread pool, each with its own response_url on the fake. The ack latency of
   a command is the time from the start of its HTTP POST to the end of the bot's HTTP response
   (which must be 200): what Slack measures against its 3 s limit.
5. Then (at most `--timeout` seconds) every response_url should receive its answer. Posts are
   counted per response_url: a command is answered exactly once when its response_url received
   exactly as many posts as the answer has messages (one with the default k=10; a result list
   over 50 blocks is split into several messages, which is recognized from the blocks: a
   continuation does not start with the "N paper(s) for" header).

Printed: ack p50/p95/p99/max in ms, answers received, commands answered exactly once,
duplicates, missing, messages parked in the bot's outbox, the answer latency and the time
until the last answer. Goal: p99 ack <= 200 ms and every command answered exactly once.
The last line is a JSON summary (`... | tail -1 | python -m json.tool`).

`--profile` also samples the stacks of the threads serving the HTTP requests during the
measured phase and prints where they spend their time (bot code is not changed: the bench
only reads frames and wraps Bolt's `App.dispatch` to time it).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("LABMATE_TEST_DATA", REPO.parent / "shared" / "data"))
SECRET = "bench-signing-secret"
CHANNEL = "C0BENCH"
GOAL_P99_MS = 200.0

from bot.app import create_app  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.devslack import FakeSlack, SlackSender  # noqa: E402
from bot.serve import start_http  # noqa: E402
from bot.services import Services  # noqa: E402
from retrieval.ingest import add_paths  # noqa: E402


def percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float("nan")


def load_queries(n: int) -> list[str]:
    path = DATA / "scifact" / "queries.train.jsonl"
    with path.open(encoding="utf-8") as handle:
        claims = [json.loads(line)["text"] for line in handle if line.strip()]
    return [claims[i % len(claims)] for i in range(n)]


def write_sample(folder: Path, docs: int) -> Path:
    source = DATA / "scifact" / "corpus.jsonl"
    target = folder / "scifact-sample.jsonl"
    with source.open(encoding="utf-8") as src, target.open("w", encoding="utf-8") as out:
        for i, line in enumerate(src):
            if i >= docs:
                break
            out.write(line)
    return target


class StackSampler:
    """Samples the stacks of threads whose name matches, every `interval` s, in the background.

    Counts (a) the innermost frame and (b) each distinct function on the stack (inclusive),
    so that "where do request threads spend their wall time" can be read off afterwards.
    """

    def __init__(self, match, interval: float = 0.002):
        self.match, self.interval = match, interval
        self.leaf = collections.Counter()
        self.inclusive = collections.Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()

    def _run(self):
        me = threading.get_ident()
        while not self._stop.wait(self.interval):
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me or not self.match(names.get(ident, "")):
                    continue
                self.samples += 1
                seen = set()
                leaf = True
                while frame is not None:
                    code = frame.f_code
                    key = f"{Path(code.co_filename).name}:{code.co_name}"
                    if leaf:
                        self.leaf[f"{key}:{frame.f_lineno}"] += 1
                        leaf = False
                    if key not in seen:
                        self.inclusive[key] += 1
                        seen.add(key)
                    frame = frame.f_back

    def report(self, top: int = 20) -> str:
        if not self.samples:
            return "  (no samples)"
        lines = [f"  {self.samples} samples of request-serving threads; innermost frames:"]
        for key, count in self.leaf.most_common(top):
            lines.append(f"    {100 * count / self.samples:5.1f}%  {key}")
        lines.append("  functions on the stack (inclusive):")
        for key, count in self.inclusive.most_common(top + 10):
            lines.append(f"    {100 * count / self.samples:5.1f}%  {key}")
        return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--docs", type=int, default=200, help="SciFact abstracts indexed")
    parser.add_argument("--warmup", type=int, default=5, help="commands sent and answered before measuring")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for all answers")
    parser.add_argument("--grace", type=float, default=1.0, help="seconds to keep watching for duplicates")
    parser.add_argument("--profile", action="store_true", help="sample request threads; time App.dispatch")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not (DATA / "scifact" / "corpus.jsonl").is_file():
        print(f"SciFact data not found under {DATA}; set LABMATE_TEST_DATA.", file=sys.stderr)
        return 2

    queries = load_queries(args.warmup + args.commands)
    with tempfile.TemporaryDirectory(prefix="labmate-ack-") as tmp, FakeSlack() as fake:
        tmp = Path(tmp)
        settings = Settings.model_validate({
            "index": {"dir": str(tmp / "index")}, "storage": {"database": str(tmp / "bot.sqlite")},
        })
        services = Services(settings)
        started = time.perf_counter()
        with services.library_lock:
            report = add_paths(services.library(), [write_sample(tmp, args.docs)], progress=False)
        services.warm_up()
        print(f"index: {len(report.added)} papers added in {time.perf_counter() - started:.1f} s "
              f"(model loaded); slack.workers={settings.slack.workers}")

        env = {"SLACK_BOT_TOKEN": fake.bot_token, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake.url}
        app = create_app(settings, services, env)
        dispatch_times: list[float] = []
        if args.profile:
            original = app.dispatch

            def timed_dispatch(req):
                t0 = time.perf_counter()
                try:
                    return original(req)
                finally:
                    dispatch_times.append(time.perf_counter() - t0)

            app.dispatch = timed_dispatch  # SlackRequestHandler calls app.dispatch(bolt_request)
        server = start_http(app, "127.0.0.1", 0)
        sender = SlackSender(f"http://127.0.0.1:{server.server_port}", SECRET, fake, timeout=30.0)

        def send(i: int, text: str) -> dict:
            url = fake.new_response_url(channel=CHANNEL, user=f"U{i:07d}")
            hook = url.rsplit("/", 1)[-1]
            t0 = time.perf_counter()
            sent_at = time.time()
            try:
                status = sender.command("/papers", text, user_id=f"U{i:07d}", channel_id=CHANNEL,
                                        response_url=url).status
                error = None
            except OSError as exc:
                status, error = None, repr(exc)
            return {"hook": hook, "status": status, "error": error, "sent_at": sent_at,
                    "ack_s": time.perf_counter() - t0}

        def posts_by_hook() -> dict[str, list]:
            by_hook: dict[str, list] = collections.defaultdict(list)
            for call in fake.calls_to("response_url"):
                if call.status == 200:
                    by_hook[call.path.rsplit("/", 1)[-1].strip("/")].append(call)
            return by_hook

        def wait_answers(hooks: list[str], timeout: float) -> float | None:
            """Seconds until every hook had a post (None on timeout)."""
            t0 = time.perf_counter()
            wanted = set(hooks)
            while time.perf_counter() - t0 < timeout:
                if wanted <= set(posts_by_hook()):
                    return time.perf_counter() - t0
                time.sleep(0.05)
            return None

        # -- warm-up (not measured) ---------------------------------------------------------
        warm = [send(-1 - i, queries[i]) for i in range(args.warmup)]
        if warm and wait_answers([w["hook"] for w in warm], args.timeout) is None:
            print("warm-up commands were not answered in time", file=sys.stderr)
        if warm:
            print(f"warm-up: {len(warm)} commands, first ack {1000 * warm[0]['ack_s']:.1f} ms, "
                  f"statuses {sorted({w['status'] for w in warm}, key=str)}")
        warm_hooks = {w["hook"] for w in warm}

        # -- measured burst ------------------------------------------------------------------
        sampler = StackSampler(lambda name: name.startswith("Thread-") or name.startswith("ThreadPoolExecutor"))
        if args.profile:
            dispatch_times.clear()
            sampler.start()
        measured = queries[args.warmup:]
        burst_start = time.perf_counter()
        burst_wall = time.time()
        with ThreadPoolExecutor(max_workers=args.concurrency, thread_name_prefix="bench-client") as pool:
            results = list(pool.map(send, range(args.commands), measured))
        sent_s = time.perf_counter() - burst_start
        if args.profile:
            sampler.stop()
        hooks = [r["hook"] for r in results]
        all_answered_s = wait_answers(hooks, max(0.0, args.timeout - sent_s))
        time.sleep(args.grace)  # a duplicate would arrive shortly after the first answer
        by_hook = posts_by_hook()

        # -- figures -------------------------------------------------------------------------
        acks_ms = [1000 * r["ack_s"] for r in results if r["status"] == 200]
        bad_status = collections.Counter(str(r["status"] if r["error"] is None else r["error"]) for r in results
                                         if r["status"] != 200)
        exactly_once = duplicates = missing = errors = split = 0
        answer_latency = []
        last_answer_at = None
        for r in results:
            posts = by_hook.get(r["hook"], [])
            if not posts:
                missing += 1
                continue
            # A split answer: later parts have no "N paper(s) for" header.
            headers = sum(1 for c in posts if _is_first_part(c.params))
            parts_expected = len(posts) if headers == 1 else None
            if len(posts) > 1 and headers == 1:
                split += 1
            if headers == 1 and len(posts) == parts_expected:
                exactly_once += 1
            else:
                duplicates += 1
            if any(c.params.get("response_type") != "in_channel" for c in posts):
                errors += 1
            first = min(c.timestamp for c in posts)
            answer_latency.append(first - r["sent_at"])
            last = max(c.timestamp for c in posts)
            last_answer_at = last if last_answer_at is None else max(last_answer_at, last)
        stray = sum(len(v) for k, v in by_hook.items() if k not in set(hooks) | warm_hooks)
        parked = len(services.state.pending(limit=10_000))
        until_last = (last_answer_at - burst_wall) if last_answer_at is not None else None

        p50, p95, p99 = (percentile(acks_ms, q) for q in (50, 95, 99))
        worst = max(acks_ms) if acks_ms else float("nan")
        print(f"\n/papers x {args.commands}, {args.concurrency} at a time, {args.docs} SciFact abstracts, "
              f"{os.cpu_count()} CPU(s)")
        print(f"sent all {args.commands} in {sent_s:.2f} s ({args.commands / sent_s:.0f} commands/s)")
        print(f"HTTP 200 acks: {len(acks_ms)}/{args.commands}" + (f"; others: {dict(bad_status)}" if bad_status else ""))
        print(f"ack latency ms: p50 {p50:.1f}  p95 {p95:.1f}  p99 {p99:.1f}  max {worst:.1f}")
        print(f"answers received: {sum(len(by_hook.get(h, [])) for h in hooks)} posts for {args.commands - missing} "
              f"commands; answered exactly once: {exactly_once}; duplicates: {duplicates}; missing: {missing}; "
              f"split into several messages: {split}; error answers (ephemeral): {errors}; "
              f"parked in outbox: {parked}; stray posts: {stray}")
        if answer_latency:
            print(f"answer latency s (command sent -> first post): p50 {percentile(answer_latency, 50):.2f}  "
                  f"p95 {percentile(answer_latency, 95):.2f}  max {max(answer_latency):.2f}")
        print(f"time until the last answer (from the first command): "
              + (f"{until_last:.2f} s" if until_last is not None else "n/a")
              + ("" if all_answered_s is not None else f"  (TIMED OUT after {args.timeout:.0f} s)"))
        goal_met = (len(acks_ms) == args.commands and p99 <= GOAL_P99_MS and exactly_once == args.commands)
        print(f"goal (p99 ack <= {GOAL_P99_MS:.0f} ms, all answered exactly once): "
              f"{'MET' if goal_met else 'NOT MET'}")
        if args.profile:
            print(f"\nApp.dispatch (Bolt: verification, middleware, listener until ack) ms: "
                  f"p50 {percentile([1000 * t for t in dispatch_times], 50):.1f}  "
                  f"p99 {percentile([1000 * t for t in dispatch_times], 99):.1f}  "
                  f"max {1000 * max(dispatch_times, default=float('nan')):.1f}  (n={len(dispatch_times)})")
            print(sampler.report())

        summary = {
            "commands": args.commands, "concurrency": args.concurrency, "docs": args.docs,
            "cpus": os.cpu_count(), "workers": settings.slack.workers,
            "ack_ok": len(acks_ms), "ack_bad": dict(bad_status),
            "ack_ms": {"p50": round(p50, 1), "p95": round(p95, 1), "p99": round(p99, 1), "max": round(worst, 1)},
            "answers_received": sum(len(by_hook.get(h, [])) for h in hooks),
            "answered_exactly_once": exactly_once, "duplicates": duplicates, "missing": missing,
            "split": split, "error_answers": errors, "parked": parked, "stray": stray,
            "answer_s": {"p50": round(percentile(answer_latency, 50), 2),
                         "p95": round(percentile(answer_latency, 95), 2)} if answer_latency else None,
            "until_last_answer_s": round(until_last, 2) if until_last is not None else None,
            "sent_s": round(sent_s, 2), "goal_met": goal_met,
        }
        if args.profile:
            summary["dispatch_ms"] = {"p50": round(percentile([1000 * t for t in dispatch_times], 50), 1),
                                      "p99": round(percentile([1000 * t for t in dispatch_times], 99), 1)}
        server.shutdown()
        server.server_close()
        services.close()
    print(json.dumps(summary))
    return 0 if goal_met else 1


def _is_first_part(params: dict) -> bool:
    """Whether a response_url post starts an answer (results header, help, error, no results)."""
    blocks = params.get("blocks")
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            blocks = None
    if not blocks:
        return True
    first = blocks[0]
    if first.get("type") != "section":
        return True
    text = (first.get("text") or {}).get("text", "")
    # A continuation message of a split result list starts with a hit ("*11. <title>*").
    return not (text.startswith("*") and text[1:2].isdigit())


if __name__ == "__main__":
    sys.exit(main())
