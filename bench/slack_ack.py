"""Slash-command ack latency and answer delivery of the real bot, end to end over HTTP.

Usage:  .venv/bin/python bench/slack_ack.py [--commands 200] [--concurrency 50] [--docs 200]
                                            [--warmup 5] [--timeout 120] [--client-process] [--profile]
                                            [--metrics-compare [--rounds 3]]

What happens (all in this one process, unless --client-process):

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
   counted per response_url: a command is answered exactly once when its posts form exactly one
   answer: one message with the default k=10; a result list over 50 blocks is split into
   several messages, so a result answer counts once when exactly one post carries the
   "*N paper(s) for" header and hits 1..N each appear once across the posts (help, errors and
   "no papers match" must be a single post).

With `--client-process` the commands are sent from a child process, so the sending side does
not compete with the bot for its GIL (Slack's servers do not run inside the bot); the CPUs are
still shared.

Printed: ack p50/p95/p99/max in ms, answers received, commands answered exactly once,
duplicates, missing, messages parked in the bot's outbox, the answer latency and the time
until the last answer. Goal: p99 ack <= 200 ms and every command answered exactly once.
The last line is a JSON summary (`... | tail -1 | python -m json.tool`); the exit status is 0
when the goal is met, 1 when it is not.

`--metrics-compare` measures the cost of the Prometheus metrics (bot/metrics.py) on the ack
path instead: two bots on the same services and index, one built with `create_app(...,
metrics=False)`, one with metrics (the default: ack histogram in the WSGI layer, request
counting through Bolt's listener hooks); `--rounds` bursts of `--commands` are sent to each,
alternating off/on/on/off... so drift hits both alike, each burst's answers awaited before the
next. Printed: ack p50/p95/p99 per side and the ratio on/off; the last line is JSON.

`--profile` also times the server-side stages of each request (accept loop, thread start,
WSGI handler, Bolt's App.dispatch) and samples the stacks of the request-serving threads during
the measured phase (bot code is not changed: the bench wraps methods of the server and app
objects it was given, and reads thread frames).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import multiprocessing
import os
import re
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
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
from bot.devslack import FakeSlack, SlackSender, parse_blocks  # noqa: E402
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
                if frame.f_code.co_name == "_worker" and Path(frame.f_code.co_filename).name == "thread.py":
                    continue  # an idle executor thread waiting for work
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
        generic = ("threading.py:", "socketserver.py:__init__", "slack_ack.py:")
        shown = [(k, c) for k, c in self.inclusive.most_common() if not k.startswith(generic)][:top]
        for key, count in shown:
            lines.append(f"    {100 * count / self.samples:5.1f}%  {key}")
        return "\n".join(lines)


def burst(bot_url: str, ids: dict, jobs: list[tuple[str, str, str]], concurrency: int) -> dict:
    """Send signed `/papers` commands, `concurrency` at a time; time each until its HTTP response.

    Module-level so that `--client-process` can run it in a child process.
    """
    sender = SlackSender(bot_url, SECRET, timeout=30.0, **ids)

    def send(job: tuple[str, str, str]) -> dict:
        user, text, url = job
        sent_at, t0 = time.time(), time.perf_counter()
        try:
            status, error = sender.command("/papers", text, user_id=user, channel_id=CHANNEL,
                                           response_url=url).status, None
        except OSError as exc:
            status, error = None, repr(exc)
        return {"hook": url.rsplit("/", 1)[-1], "status": status, "error": error, "sent_at": sent_at,
                "ack_s": time.perf_counter() - t0}

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench-client") as pool:
        # Start the client threads before the clock does: creating them during the burst would
        # hold concurrent.futures' process-wide lock, which the bot's executors take too.
        gate = threading.Barrier(concurrency + 1)
        for _ in range(concurrency):
            pool.submit(gate.wait)
        gate.wait()
        burst_wall, t0 = time.time(), time.perf_counter()
        results = list(pool.map(send, jobs))
        sent_s = time.perf_counter() - t0
    return {"results": results, "burst_wall": burst_wall, "sent_s": sent_s}


class Stages:
    """Server-side timestamps of each request, by wrapping methods of the server and app objects
    (instance attributes only; the bot's code is unchanged).

    accept loop: `process_request` in the single thread that accepts connections (it starts
    one thread per request); thread start: from the accept until that thread runs; handler:
    the whole WSGI handling in that thread (read, Bolt, write); dispatch: Bolt's `App.dispatch`
    (signature check, middleware, running the listener until it calls ack()).
    """

    def __init__(self, app, server):
        self._lock = threading.Lock()
        self.clear()
        process_request, finish_request, dispatch = server.process_request, server.finish_request, app.dispatch

        def timed_process_request(request, client_address):
            t0 = time.perf_counter()
            self._mark(client_address, "accepted", t0)
            process_request(request, client_address)
            self._mark(client_address, "spawned", time.perf_counter())

        def timed_finish_request(request, client_address):
            self._mark(client_address, "started", time.perf_counter())
            try:
                finish_request(request, client_address)
            finally:
                self._mark(client_address, "finished", time.perf_counter())

        def timed_dispatch(req):
            t0 = time.perf_counter()
            try:
                return dispatch(req)
            finally:
                with self._lock:
                    self.dispatch.append(time.perf_counter() - t0)

        server.process_request = timed_process_request
        server.finish_request = timed_finish_request
        app.dispatch = timed_dispatch  # the WSGI adapter calls app.dispatch(bolt_request)

    def clear(self):
        with self._lock:
            self.marks: dict = collections.defaultdict(dict)
            self.dispatch: list[float] = []

    def _mark(self, key, name, value):
        with self._lock:
            self.marks[key][name] = value

    def _stage(self, start: str, end: str) -> list[float]:
        return [1000 * (m[end] - m[start]) for m in self.marks.values() if start in m and end in m]

    def rows(self, acks_ms) -> list[tuple[str, list[float]]]:
        return [
            ("accept loop (process_request: start a thread)", self._stage("accepted", "spawned")),
            ("accepted -> handler thread running", self._stage("accepted", "started")),
            ("handler thread (read, WSGI, Bolt, write)", self._stage("started", "finished")),
            ("  of which App.dispatch", [1000 * t for t in self.dispatch]),
            ("server total (accepted -> response written)", self._stage("accepted", "finished")),
            ("client: ack latency (POST -> response read)", list(acks_ms)),
        ]

    def report(self, acks_ms) -> str:
        lines = [f"  {'stage':48s} {'p50':>7s} {'p95':>7s} {'p99':>7s} {'max':>7s}     n"]
        for name, values in self.rows(acks_ms):
            if values:
                lines.append(f"  {name:48s} {percentile(values, 50):7.1f} {percentile(values, 95):7.1f} "
                             f"{percentile(values, 99):7.1f} {max(values):7.1f} {len(values):5d}")
        accepts = sorted(m["accepted"] for m in self.marks.values() if "accepted" in m)
        if len(accepts) > 1:
            busy = sum(self._stage("accepted", "spawned"))
            span = 1000 * (accepts[-1] - accepts[0])
            lines.append(f"  accept loop busy {busy:.0f} ms of the {span:.0f} ms between the first and the last "
                         f"accept ({len(accepts)} connections)")
        return "\n".join(lines)

    def summary(self) -> dict:
        keys = ["accept_loop", "to_thread", "handler", "dispatch", "server_total"]
        return {k: {"p50": round(percentile(v, 50), 1), "p99": round(percentile(v, 99), 1)}
                for k, (_, v) in zip(keys, self.rows([])) if v}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--docs", type=int, default=200, help="SciFact abstracts indexed")
    parser.add_argument("--warmup", type=int, default=5, help="commands sent and answered before measuring")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for all answers")
    parser.add_argument("--grace", type=float, default=1.0, help="seconds to keep watching for duplicates")
    parser.add_argument("--client-process", action="store_true",
                        help="send from a child process (the sender then does not share the bot's GIL)")
    parser.add_argument("--profile", action="store_true", help="sample request threads; time App.dispatch")
    parser.add_argument("--metrics-compare", action="store_true",
                        help="ack latency with metrics off vs on, side by side (see above)")
    parser.add_argument("--rounds", type=int, default=3, help="--metrics-compare: bursts per side")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.root.handlers:  # bm25s sets its own logger to DEBUG when imported
        handler.setLevel(logging.WARNING)
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
        if args.metrics_compare:
            summary = compare_metrics(args, settings, services, fake, env, queries)
            services.close()
            print(json.dumps(summary))
            return 0
        app = create_app(settings, services, env)
        server = start_http(app, "127.0.0.1", 0)
        stages = Stages(app, server) if args.profile else None
        bot_url = f"http://127.0.0.1:{server.server_port}"
        ids = {"team_id": fake.team_id, "api_app_id": fake.app_id, "bot_user_id": fake.bot_user_id}

        def jobs(first: int, texts: list[str]) -> list[tuple[str, str, str]]:
            """(user, text, response_url) per command: each its own response_url on the fake."""
            users = [f"U{first + i:07d}" for i in range(len(texts))]
            return [(u, t, fake.new_response_url(channel=CHANNEL, user=u)) for u, t in zip(users, texts)]

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
        warm = burst(bot_url, ids, jobs(9_000_000, queries[:args.warmup]), 1)["results"] if args.warmup else []
        if warm and wait_answers([w["hook"] for w in warm], args.timeout) is None:
            print("warm-up commands were not answered in time", file=sys.stderr)
        if warm:
            print(f"warm-up: {len(warm)} commands, first ack {1000 * warm[0]['ack_s']:.1f} ms, "
                  f"statuses {sorted({w['status'] for w in warm}, key=str)}")
        warm_hooks = {w["hook"] for w in warm}

        # -- measured burst ------------------------------------------------------------------
        # Request threads: one per connection (socketserver's "Thread-N (process_request_thread)")
        # and Bolt's listener executor ("ThreadPoolExecutor-N_M").
        sampler = StackSampler(lambda name: "process_request_thread" in name or name.startswith("ThreadPoolExecutor"))
        work = jobs(0, queries[args.warmup:])
        if args.client_process:
            # Slack's side in its own process (as in production, it does not share the bot's GIL).
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
                child.submit(time.sleep, 0).result()  # the child has started and imported this module
                if stages:
                    stages.clear()
                    sampler.start()
                sent = child.submit(burst, bot_url, ids, work, args.concurrency).result()
        else:
            if stages:
                stages.clear()
                sampler.start()
            sent = burst(bot_url, ids, work, args.concurrency)
        if stages:
            sampler.stop()
        results, burst_wall, sent_s = sent["results"], sent["burst_wall"], sent["sent_s"]
        hooks = [r["hook"] for r in results]
        all_answered_s = wait_answers(hooks, max(0.0, args.timeout - sent_s))
        time.sleep(args.grace)  # a duplicate would arrive shortly after the first answer
        by_hook = posts_by_hook()

        # -- figures -------------------------------------------------------------------------
        acks_ms = [1000 * r["ack_s"] for r in results if r["status"] == 200]
        bad_status = collections.Counter(str(r["status"] if r["error"] is None else r["error"]) for r in results
                                         if r["status"] != 200)
        exactly_once = duplicates = incomplete = missing = errors = split = 0
        answer_latency = []
        last_answer_at = None
        for r in results:
            posts = by_hook.get(r["hook"], [])
            if not posts:
                missing += 1
                continue
            verdict = _answer_shape(posts)
            if verdict == "once":
                exactly_once += 1
                split += len(posts) > 1
            elif verdict == "incomplete":
                incomplete += 1
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
              f"incomplete: {incomplete}; split into several messages: {split}; error answers (ephemeral): {errors}; "
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
        if stages:
            print("\nwhere an ack's time goes (ms; server-side stages, measured in this process):")
            print(stages.report(acks_ms))
            print(sampler.report())

        summary = {
            "commands": args.commands, "concurrency": args.concurrency, "docs": args.docs,
            "cpus": os.cpu_count(), "workers": settings.slack.workers,
            "ack_ok": len(acks_ms), "ack_bad": dict(bad_status),
            "ack_ms": {"p50": round(p50, 1), "p95": round(p95, 1), "p99": round(p99, 1), "max": round(worst, 1)},
            "answers_received": sum(len(by_hook.get(h, [])) for h in hooks),
            "answered_exactly_once": exactly_once, "duplicates": duplicates, "missing": missing,
            "incomplete": incomplete,
            "split": split, "error_answers": errors, "parked": parked, "stray": stray,
            "answer_s": {"p50": round(percentile(answer_latency, 50), 2),
                         "p95": round(percentile(answer_latency, 95), 2)} if answer_latency else None,
            "until_last_answer_s": round(until_last, 2) if until_last is not None else None,
            "sent_s": round(sent_s, 2), "goal_met": goal_met,
        }
        if stages:
            summary["stages_ms"] = stages.summary()
        server.shutdown()
        server.server_close()
        services.close()
    print(json.dumps(summary))
    return 0 if goal_met else 1


def compare_metrics(args, settings, services, fake, env: dict, queries: list[str]) -> dict:
    """Ack latency of the same bot with metrics off and on (see the module docstring)."""
    plain_app = create_app(settings, services, env, metrics=False)
    plain_submit = services.submit
    metered_app = create_app(settings, services, env)  # wraps services.submit on this object
    submits = {"off": plain_submit, "on": services.submit}
    servers = {"off": start_http(plain_app, "127.0.0.1", 0), "on": start_http(metered_app, "127.0.0.1", 0)}
    urls = {mode: f"http://127.0.0.1:{server.server_port}" for mode, server in servers.items()}
    ids = {"team_id": fake.team_id, "api_app_id": fake.app_id, "bot_user_id": fake.bot_user_id}
    counter = iter(range(10_000_000))

    def run(mode: str, texts: list[str], concurrency: int) -> tuple[list[float], int]:
        services.submit = submits[mode]
        work = []
        for text in texts:
            user = f"U{next(counter):07d}"
            work.append((user, text, fake.new_response_url(channel=CHANNEL, user=user)))
        results = burst(urls[mode], ids, work, concurrency)["results"]
        hooks = {r["hook"] for r in results}
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < args.timeout:  # answers in, before the next burst starts
            answered = {c.path.rsplit("/", 1)[-1].strip("/") for c in fake.calls_to("response_url")}
            if hooks <= answered:
                break
            time.sleep(0.05)
        else:
            print(f"{mode}: not every command was answered within {args.timeout:.0f} s", file=sys.stderr)
        return [1000 * r["ack_s"] for r in results if r["status"] == 200], len(results)

    for mode in ("off", "on"):
        if args.warmup:
            run(mode, queries[:args.warmup], 1)
    acks: dict[str, list[float]] = {"off": [], "on": []}
    sent = {"off": 0, "on": 0}
    texts = queries[args.warmup:args.warmup + args.commands]
    order = [mode for i in range(args.rounds) for mode in (("off", "on") if i % 2 == 0 else ("on", "off"))]
    for mode in order:
        ok, total = run(mode, texts, args.concurrency)
        acks[mode] += ok
        sent[mode] += total
    histogram = {s.name: s.value for f in metered_app.labmate_metrics.registry.collect()
                 for s in f.samples if s.name == "labmate_slack_ack_seconds_count"}
    for server in servers.values():
        server.shutdown()
    services.submit = plain_submit

    figures = {mode: {q: round(percentile(values, p), 2) for q, p in (("p50", 50), ("p95", 95), ("p99", 99))}
               for mode, values in acks.items()}
    ratio = {q: round(figures["on"][q] / figures["off"][q], 3) for q in ("p50", "p95", "p99")}
    print(f"\n/papers ack latency, metrics off vs on: {args.rounds} bursts of {args.commands} per side "
          f"({args.concurrency} at a time), alternating; {os.cpu_count()} CPU(s)")
    print(f"  {'':12s} {'off':>9s} {'on':>9s} {'on/off':>8s}")
    for q in ("p50", "p95", "p99"):
        print(f"  {q + ' (ms)':12s} {figures['off'][q]:9.2f} {figures['on'][q]:9.2f} {ratio[q]:8.3f}")
    print(f"  HTTP 200 acks: off {len(acks['off'])}/{sent['off']}, on {len(acks['on'])}/{sent['on']}; "
          f"the on bot's labmate_slack_ack_seconds_count: {histogram.get('labmate_slack_ack_seconds_count', 0):.0f}")
    return {"mode": "metrics-compare", "commands": args.commands, "rounds": args.rounds,
            "concurrency": args.concurrency, "cpus": os.cpu_count(), "ack_ms": figures, "ratio_on_off": ratio,
            "acks_ok": {m: len(v) for m, v in acks.items()}, "sent": sent}


_HEADER = re.compile(r"^\*(\d+) paper\(s\) for ")
_HIT = re.compile(r"^\*(\d+)\. ")


def _blocks(params: dict) -> list:
    blocks = parse_blocks(params.get("blocks"))
    return blocks if isinstance(blocks, list) else []


def _answer_shape(posts: list) -> str:
    """"once" when the posts to one response_url form exactly one answer, else "duplicate"
    (or "incomplete" when parts of a split result list are missing).

    A result list is one answer when exactly one post carries the "*N paper(s) for" header and
    the hits 1..N appear exactly once across the posts (a list over 50 blocks is split into
    several messages). Anything else (help, an error, "no papers match") must be one post.
    """
    texts = [[(b.get("text") or {}).get("text", "") for b in _blocks(c.params) if b.get("type") == "section"]
             for c in posts]
    headers = [int(m.group(1)) for t in texts for s in t if (m := _HEADER.match(s))]
    if not headers:
        return "once" if len(posts) == 1 else "duplicate"
    ranks = sorted(int(m.group(1)) for t in texts for s in t if (m := _HIT.match(s)))
    if len(headers) == 1 and ranks == list(range(1, headers[0] + 1)):
        return "once"
    if len(headers) == 1 and len(set(ranks)) == len(ranks):
        return "incomplete"  # some parts of a split answer never came
    return "duplicate"


if __name__ == "__main__":
    sys.exit(main())
