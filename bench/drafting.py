"""Drafting: speed against bare `model.generate`, model load time, time to the first visible
update in Slack, and citation correctness over SciFact claims, all through labmate's own code.

    .venv/bin/python bench/drafting.py [--topics 20] [--k 4] [--seed 13] [--reps 3] [--slack-reps 3]
                                       [--sections related-work,introduction] [--threads N] [--quick]
                                       [--index DIR] [--json FILE]

Everything runs in one process (the load times in child processes), on the default model
(SmolLM2-135M-Instruct GGUF, `TransformersGenerator(device="cpu")`, float32) and the SciFact
library under bench/results/scifact-index (built with labmate's ingest if missing, as
bench/retrieval_quality.py does). Topics are SciFact train claims drawn with `--seed`.

0. Model load: cold (dequantizing the GGUF into a fresh temporary cache_dir) and warm (from
   the dequantized copy under index/models, filled from the cold one when missing), each in a
   fresh child process: `load_seconds` as the generator measures it. Goal: warm under 1 s.
1. Throughput: `draft()` of a related-work section (k=`--k`) on 3 topics against a bare
   `generator.model.generate` (same model object, greedy, same dtype and threads) writing
   exactly the same number of tokens (min_new_tokens = max_new_tokens = the draft's token
   count) from the chat-encoded prompt of the draft's first sentence (with the answer's first
   words the pipeline gives the model, if any); also "bare/sentence":
   the draft's own prompts, one `generate` each with that sentence's token count (what
   writing sentence by sentence costs before any streaming or checking). Runs are interleaved
   (pipeline, bare, bare/sentence, next topic ...; `--reps` rounds, odd ones in reverse order);
   medians of the per-run ratios pipeline/bare are reported (goal >= 0.9), over all runs and
   over the "quiet" ones: each step notes the CPU other processes used meanwhile (/proc/stat),
   since on a shared 2-core machine a second busy process slows 2-thread torch several-fold.
   Plus bare tok/s at 1 thread and at torch's default thread count.
2. Slack: the real bot (HTTP mode, `create_app` + `start_http`) against FakeSlack with the real
   model and library; signed `/draft related-work <topic>` commands, one at a time; from the
   POST to (a) the HTTP ack, (b) the placeholder chat.postMessage reaching the fake, (c) the
   first chat.update that shows model text, (d) the .md/.bib files in the thread.
   Default `[slack] update_seconds` (1.0); `[drafting] k` = `--k`.
3. Citations: `--topics` drafts per section in `--sections`; a draft is correct when
   `citation_errors(d, all_cited=<related-work>)` is empty, every [n] lies in 1..len(citations)
   and the .bib holds exactly the cited keys. What the checker repaired is reported from
   Draft.stats (sentences, fallbacks, removed citations) and from what the model first wrote
   (its own [n] right, missing or wrong; why sentences were replaced).

The results go to `--json` (default bench/results/drafting.json) as well.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# Run as a script, this file's folder leads sys.path and this module would shadow the `drafting`
# package; drop the folder and put the repository first.
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != HERE]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

DATA = Path(os.environ.get("LABMATE_TEST_DATA", REPO.parent / "shared" / "data")) / "scifact"
MODELS = REPO / "index" / "models"
SECRET = "bench-signing-secret"
CHANNEL = "C0DRAFT"
USER = "U0BENCH"
GOAL_RATIO = 0.9
GOAL_WARM_S = 1.0
BIB_KEY = re.compile(r"@\w+\s*\{\s*([^,\s]+)\s*,")


def median(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def retrieval_quality():
    """bench/retrieval_quality.py as a module (for its `open_index`, which builds the index if missing)."""
    spec = importlib.util.spec_from_file_location("bench_retrieval_quality", HERE / "retrieval_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_topics(n: int, seed: int) -> list[str]:
    lines = (DATA / "queries.train.jsonl").read_text(encoding="utf-8").splitlines()
    claims = [json.loads(line)["text"].strip() for line in lines if line.strip()]
    return random.Random(seed).sample(claims, n)


def quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


# -- 0. model load ------------------------------------------------------------------------------

def load_child(cache_dir: str) -> None:
    """In a fresh process: load the default model with `cache_dir`; print the times as JSON."""
    t0 = time.perf_counter()
    import torch  # noqa: F401  (the bot has imported torch long before it loads the model)
    import transformers  # noqa: F401

    from drafting.backends.transformers_backend import TransformersGenerator, cache_folder

    quiet_transformers()
    imports = time.perf_counter() - t0
    generator = TransformersGenerator(cache_dir=Path(cache_dir), device="cpu")
    folder = cache_folder(generator.files, Path(cache_dir))
    was_cached = (folder / "config.json").exists()
    generator.load()
    again = TransformersGenerator(cache_dir=Path(cache_dir), device="cpu")
    again.load()  # a second load in this process: imports done, files in the page cache
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t1 = time.perf_counter()
    AutoModelForCausalLM.from_pretrained(folder)
    t2 = time.perf_counter()
    AutoTokenizer.from_pretrained(folder)
    t3 = time.perf_counter()
    print(json.dumps({"imports_s": imports, "load_s": generator.load_seconds, "again_s": again.load_seconds,
                      "model_s": t2 - t1, "tokenizer_s": t3 - t2, "was_cached": was_cached,
                      "folder": str(folder)}))


def run_load_child(cache_dir: Path) -> dict:
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--load-child", str(cache_dir)],
                         capture_output=True, text=True, cwd=REPO, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"model load child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_load(reps: int) -> dict:
    """Cold (fresh temporary cache_dir) once, then warm (index/models) `reps` times, each in a child."""
    with tempfile.TemporaryDirectory(prefix="labmate-cold-") as tmp:
        cold = run_load_child(Path(tmp))
        cached = Path(cold["folder"])
        target = MODELS / cached.name
        if not (target / "config.json").exists():  # fill index/models from the cold copy
            MODELS.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=cached.name + ".", dir=MODELS))
            shutil.copytree(cached, staging, dirs_exist_ok=True)
            os.rename(staging, target)
    warm = [run_load_child(MODELS) for _ in range(reps)]
    assert not cold["was_cached"] and all(w["was_cached"] for w in warm)
    return {"cold": cold, "warm": warm}


def print_load(load: dict) -> None:
    cold, warm = load["cold"], load["warm"]
    print("\n== 0. model load (fresh child process each; load_seconds as the generator measures it) ==")
    print(f"{'':26s} {'load s':>8s} {'2nd load in process s':>22s} {'imports s':>10s}")
    print(f"{'cold (dequantize GGUF)':26s} {cold['load_s']:8.2f} {cold['again_s']:22.2f} {cold['imports_s']:10.2f}")
    for i, w in enumerate(warm, 1):
        print(f"{f'warm #{i} (index/models)':26s} {w['load_s']:8.2f} {w['again_s']:22.2f} {w['imports_s']:10.2f}")
    warm_s = median([w["load_s"] for w in warm])
    again_s = median([w["again_s"] for w in warm])
    print(f"warm median {warm_s:.2f} s; cold/warm {cold['load_s'] / warm_s:.1f}x. The first load in a process also "
          f"pays transformers' lazy imports (model and generation code): {warm_s - again_s:.2f} s of it; a second "
          f"load takes {again_s:.2f} s (model.from_pretrained {median([w['model_s'] for w in warm]):.2f} s, "
          f"tokenizer {median([w['tokenizer_s'] for w in warm]):.2f} s)")
    print(f"goal warm < {GOAL_WARM_S:.0f} s: {'met' if warm_s < GOAL_WARM_S else 'NOT met'} for a fresh process's "
          f"first load; {'met' if again_s < GOAL_WARM_S else 'NOT met'} once the model code is imported")


# -- 1. throughput ------------------------------------------------------------------------------

class Recorder:
    """The generator as the pipeline sees it, noting each call's messages and token count (one
    list append per sentence: nothing measurable next to a `generate`)."""

    def __init__(self, generator):
        self.generator, self.name = generator, generator.name
        self.calls: list[tuple[list[dict], str, int]] = []  # (messages, prefix, tokens)

    def generate(self, messages, **options):
        result = self.generator.generate(messages, **options)
        self.calls.append((list(messages), options.get("prefix") or "", result.tokens))
        return result


def encode(generator, messages, prefix: str = ""):
    """The prompt's token ids as the generator builds them (with the answer's first words, if any)."""
    return generator.encode_chat(messages, prefix) if prefix else generator.encode_chat(messages)


def bare_generate(generator, messages, tokens: int, prefix: str = "") -> float:
    """Seconds for `model.generate` to write exactly `tokens` tokens greedily after `messages`."""
    import torch

    ids = encode(generator, messages, prefix)
    start = time.perf_counter()
    with torch.inference_mode():
        output = generator.model.generate(ids, attention_mask=torch.ones_like(ids), min_new_tokens=tokens,
                                          max_new_tokens=tokens, do_sample=False, temperature=None, top_p=None,
                                          top_k=None, pad_token_id=generator.tokenizer.eos_token_id)
    seconds = time.perf_counter() - start
    assert output.shape[1] - ids.shape[1] == tokens, (output.shape, ids.shape, tokens)
    return seconds


QUIET_CORES = 0.25  # a run is "quiet" when other processes used less CPU than this while it ran


def cpu_counters() -> tuple[float, float, float] | None:
    """(wall s, CPU seconds used by the whole machine, by this process), or None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            values = [int(v) for v in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    busy = sum(values) - values[3] - values[4]  # all but idle and iowait
    own = os.times()
    return time.perf_counter(), busy / os.sysconf("SC_CLK_TCK"), own.user + own.system


def others_cores(before, after) -> float | None:
    """Cores' worth of CPU that other processes used between two `cpu_counters()`."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    return max(0.0, ((after[1] - before[1]) - (after[2] - before[2])) / (after[0] - before[0]))


def bench_throughput(generator, library, topics: list[str], k: int, reps: int) -> dict:
    from drafting.pipeline import draft
    from drafting.types import DraftRequest

    runs, seen = [], {}  # seen: topic -> (token count, [(messages, tokens)]) of its first draft
    for rep in range(reps):
        for topic in topics:
            timed = {}

            def pipeline():
                recorder = Recorder(generator)
                d = draft(DraftRequest("related-work", topic, k=k), library=library, generator=recorder)
                seen.setdefault(topic, (d.stats["tokens"], recorder.calls))
                timed.update(tokens=d.stats["tokens"], generation_s=d.stats["generation_seconds"],
                             e2e_s=d.stats["seconds"])

            def bare():
                tokens, calls = seen[topic]
                timed["bare_s"] = bare_generate(generator, calls[0][0], tokens, calls[0][1])

            def per_sentence():
                timed["split_s"] = sum(bare_generate(generator, messages, n, prefix)
                                       for messages, prefix, n in seen[topic][1])

            # Odd rounds run in the opposite order, so neither side always goes first.
            others = {}
            for step in ((pipeline, bare, per_sentence) if rep % 2 == 0 else (per_sentence, bare, pipeline)):
                before = cpu_counters()
                step()
                others[step.__name__] = others_cores(before, cpu_counters())
            tokens, calls = seen[topic]
            gen_s, e2e_s, bare_s, split_s = timed["generation_s"], timed["e2e_s"], timed["bare_s"], timed["split_s"]
            runs.append({"rep": rep, "topic": topic, "tokens": tokens, "sentences": len(calls),
                         "same_tokens_as_first_draft": timed["tokens"] == tokens,
                         "prompt_tokens": [int(encode(generator, m, prefix).shape[1]) for m, prefix, _ in calls],
                         "pipeline_generation_s": gen_s, "pipeline_s": e2e_s,
                         "bare_s": bare_s, "bare_per_sentence_s": split_s,
                         "pipeline_generation_tps": tokens / gen_s, "pipeline_tps": tokens / e2e_s,
                         "bare_tps": tokens / bare_s, "bare_per_sentence_tps": tokens / split_s,
                         "ratio_generation": bare_s / gen_s, "ratio_e2e": bare_s / e2e_s,
                         "ratio_generation_vs_per_sentence": split_s / gen_s, "others_cores": others,
                         "quiet": all(v is not None and v < QUIET_CORES for v in others.values())})
            print(f"  [{len(runs)}/{reps * len(topics)}] {tokens} tokens: pipeline {tokens / gen_s:.2f} tok/s "
                  f"(e2e {tokens / e2e_s:.2f}), bare {tokens / bare_s:.2f}, bare/sentence {tokens / split_s:.2f}"
                  + ("" if timed["tokens"] == tokens else f" (this draft wrote {timed['tokens']} tokens!)")
                  + f"; other processes used {_cores(others)} cores", flush=True)
    first_prompt = seen[topics[0]][1][0][:2]  # (messages, prefix)
    keys = ("pipeline_generation_tps", "pipeline_tps", "bare_tps", "bare_per_sentence_tps", "ratio_generation",
            "ratio_e2e", "ratio_generation_vs_per_sentence")
    quiet = [r for r in runs if r["quiet"]]
    return {"k": k, "reps": reps, "runs": runs, "first_prompt": first_prompt,
            **{key: median([r[key] for r in runs]) for key in keys},
            "quiet_runs": len(quiet), "quiet": {key: median([r[key] for r in quiet]) for key in keys} if quiet else None}


def _cores(others: dict) -> str:
    """Other processes' CPU during the pipeline, bare and bare-per-sentence steps (in that order)."""
    values = [others.get(k) for k in ("pipeline", "bare", "per_sentence")] if "pipeline" in others else others.values()
    return "/".join("?" if v is None else f"{v:.2f}" for v in values)


def bench_threads(generator, prompt: tuple[list[dict], str], reps: int, tokens: int = 24) -> dict:
    """Bare tok/s (prefill + `tokens` tokens) at 1 thread and at the cores' count, interleaved."""
    import torch

    original = torch.get_num_threads()
    counts = sorted({1, original, os.cpu_count() or 1})
    tps: dict[int, list[float]] = {c: [] for c in counts}
    others: dict[int, list[float | None]] = {c: [] for c in counts}
    try:
        for _ in range(reps):
            for count in counts:
                torch.set_num_threads(count)
                before = cpu_counters()
                tps[count].append(tokens / bare_generate(generator, prompt[0], tokens, prompt[1]))
                others[count].append(others_cores(before, cpu_counters()))
    finally:
        torch.set_num_threads(original)
    return {"tokens": tokens, "reps": reps, "default_threads": original,
            "tps": {str(c): v for c, v in tps.items()}, "median_tps": {str(c): median(v) for c, v in tps.items()},
            "others_cores": {str(c): v for c, v in others.items()}}


def print_throughput(result: dict, threads: dict) -> None:
    print(f"\n== 1. throughput: related-work, k={result['k']}, {len(result['runs'])} drafts "
          f"(pipeline, bare, bare/sentence interleaved; odd rounds reversed) ==")
    print(f"{'#':>2s} {'tok':>4s} {'sent':>4s} {'prompt tok':>10s} {'pipe gen':>9s} {'pipe e2e':>9s} {'bare':>7s} "
          f"{'bare/sent':>9s} {'gen/bare':>9s} {'e2e/bare':>9s} {'gen/(bare/sent)':>16s}  {'others (cores)':>15s}")
    for i, r in enumerate(result["runs"], 1):
        prompts = f"{min(r['prompt_tokens'])}-{max(r['prompt_tokens'])}"
        print(f"{i:2d} {r['tokens']:4d} {r['sentences']:4d} {prompts:>10s} {r['pipeline_generation_tps']:9.2f} "
              f"{r['pipeline_tps']:9.2f} {r['bare_tps']:7.2f} {r['bare_per_sentence_tps']:9.2f} "
              f"{r['ratio_generation']:9.2f} {r['ratio_e2e']:9.2f} {r['ratio_generation_vs_per_sentence']:16.2f}  "
              f"{_cores(r['others_cores']):>15s}{'' if r['quiet'] else ' busy'}")

    def row(name: str, m: dict) -> None:
        print(f"{name:>26s} {m['pipeline_generation_tps']:9.2f} {m['pipeline_tps']:9.2f} {m['bare_tps']:7.2f} "
              f"{m['bare_per_sentence_tps']:9.2f} {m['ratio_generation']:9.2f} {m['ratio_e2e']:9.2f} "
              f"{m['ratio_generation_vs_per_sentence']:16.2f}")

    row(f"median, all {len(result['runs'])}", result)
    if result["quiet"]:
        row(f"median, {result['quiet_runs']} quiet", result["quiet"])
    print("tok/s; ratios are medians of the per-run ratios; 'others': CPU that other processes used during "
          f"pipeline/bare/bare-per-sentence; 'busy': {QUIET_CORES} cores or more")
    verdict = lambda m: "met" if m["ratio_generation"] >= GOAL_RATIO else "NOT met"  # noqa: E731
    print(f"pipeline/bare (model time) {result['ratio_generation']:.2f} over all runs, end to end "
          f"{result['ratio_e2e']:.2f}: goal >= {GOAL_RATIO} {verdict(result)}"
          + (f"; over the quiet runs {result['quiet']['ratio_generation']:.2f} (end to end "
             f"{result['quiet']['ratio_e2e']:.2f}): {verdict(result['quiet'])}" if result["quiet"]
             else "; no run was quiet"))
    per = ", ".join(f"{c} thread{'s' * (c != '1')} {v:.2f} (others {median(threads['others_cores'][c]):.2f} cores)"
                    for c, v in threads["median_tps"].items())
    print(f"bare tok/s by torch threads (prefill + {threads['tokens']} tokens, median of {threads['reps']}): {per}; "
          f"the bot runs with torch's default, {threads['default_threads']}")


# -- 2. Slack -----------------------------------------------------------------------------------

def _blocks(params: dict) -> list:
    from bot.devslack import parse_blocks  # bot imports wait until the script has fixed sys.path

    blocks = parse_blocks(params.get("blocks"))
    return blocks if isinstance(blocks, list) else []


def bench_slack(generator, index: Path, topics: list[str], k: int, timeout: float) -> dict:
    """The bot gets its own library (Services.close() closes it), opened and warmed before the clock."""
    from bot.app import create_app
    from bot.config import Settings
    from bot.devslack import FakeSlack, SlackSender
    from bot.serve import start_http
    from bot.services import Services

    runs = []
    library = retrieval_quality().open_index(index)
    with tempfile.TemporaryDirectory(prefix="labmate-draft-bench-") as tmp, FakeSlack() as fake:
        settings = Settings.model_validate({
            "index": {"dir": str(library.folder)}, "storage": {"database": str(Path(tmp) / "bot.sqlite")},
            "drafting": {"k": k, "cache_dir": str(MODELS), "device": "cpu"}})
        services = Services(settings, library=library, generator=generator)
        services.warm_up()
        env = {"SLACK_BOT_TOKEN": fake.bot_token, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake.url}
        server = start_http(create_app(settings, services, env), "127.0.0.1", 0)
        sender = SlackSender(f"http://127.0.0.1:{server.server_port}", SECRET, fake)
        try:
            # Not measured: Bolt's first request and auth.test, with a `/draft help` (no drafting).
            sender.command("/draft", "help", user_id=USER, channel_id=CHANNEL)
            fake.wait_for(lambda m: m.source == "response_url" and "/draft" in m.plain_text, timeout=30)
            for topic in topics:
                before = cpu_counters()
                sent = time.time()
                t0 = time.perf_counter()
                response = sender.command("/draft", f"related-work {topic}", user_id=USER, channel_id=CHANNEL)
                ack_s = time.perf_counter() - t0
                placeholder = fake.wait_for_call(
                    "chat.postMessage", timeout=30, predicate=lambda c: c.timestamp >= sent
                    and str(c.params.get("text", "")).startswith("Drafting") and c.params.get("channel") == CHANNEL)
                ts = (placeholder.response or {}).get("ts")
                first = fake.wait_for(
                    lambda c: c.method == "chat.update" and c.params.get("ts") == ts
                    and "writing…" in json.dumps(_blocks(c.params), ensure_ascii=False), timeout=timeout,
                    among="calls")
                done = fake.wait_for(lambda m: (m.thread_ts == ts and m.files)
                                     or (m.ts == ts and "Could not draft" in m.plain_text), timeout=timeout)
                done_at = time.time()
                others = others_cores(before, cpu_counters())
                updates = [c for c in fake.calls_to("chat.update") if c.params.get("ts") == ts
                           and "writing…" in json.dumps(_blocks(c.params), ensure_ascii=False)]
                shown = _blocks(first.params)[1]["text"]["text"]
                runs.append({"topic": topic, "status": response.status, "ack_s": ack_s,
                             "placeholder_s": placeholder.timestamp - sent, "first_update_s": first.timestamp - sent,
                             "done_s": done_at - sent, "failed": not done.files, "live_updates": len(updates),
                             "others_cores": others,
                             "first_text": shown})
                r = runs[-1]
                print(f"  [{len(runs)}/{len(topics)}] ack {1000 * r['ack_s']:.0f} ms, placeholder "
                      f"{1000 * r['placeholder_s']:.0f} ms, first model text {r['first_update_s']:.2f} s, done "
                      f"{r['done_s']:.1f} s", flush=True)
        finally:
            server.shutdown()
            server.server_close()
            services.close()
    keys = ("ack_s", "placeholder_s", "first_update_s", "done_s")
    return {"k": k, "update_seconds": settings.slack.update_seconds, "runs": runs,
            "median": {key: median([r[key] for r in runs]) for key in keys}}


def print_slack(result: dict) -> None:
    print(f"\n== 2. Slack: /draft related-work, real bot over HTTP against FakeSlack, k={result['k']}, "
          f"update_seconds={result['update_seconds']} ==")
    print(f"{'#':>2s} {'status':>6s} {'ack ms':>8s} {'placeholder ms':>15s} {'1st model text s':>17s} "
          f"{'done s':>7s} {'edits':>6s} {'others':>7s}  first text shown")
    for i, r in enumerate(result["runs"], 1):
        text = " ".join(r["first_text"].split())
        print(f"{i:2d} {r['status']:6d} {1000 * r['ack_s']:8.1f} {1000 * r['placeholder_s']:15.1f} "
              f"{r['first_update_s']:17.2f} {r['done_s']:7.1f} {r['live_updates']:6d} "
              f"{'?' if r['others_cores'] is None else format(r['others_cores'], '.2f'):>7s}  {text[:40]!r}"
              + ("  FAILED" if r["failed"] else ""))
    m = result["median"]
    print(f"{'median':>9s} {1000 * m['ack_s']:8.1f} {1000 * m['placeholder_s']:15.1f} {m['first_update_s']:17.2f} "
          f"{m['done_s']:7.1f}")


# -- 3. citations -------------------------------------------------------------------------------

def draft_errors(d, all_cited: bool) -> list[str]:
    """citation_errors, plus: every [n] within 1..len(citations); the .bib holds exactly the cited
    keys (as a multiset); no paper cited under two numbers."""
    from drafting.checks import cited_numbers
    from drafting.references import citation_errors

    errors = citation_errors(d, all_cited=all_cited)
    listed = len(d.citations)
    errors += [f"[{n}] outside 1..{listed}" for n in sorted(set(cited_numbers(d.text))) if not 1 <= n <= listed]
    bib = collections.Counter(BIB_KEY.findall(d.bibtex))
    if bib != collections.Counter(c.key for c in d.citations):
        errors.append(f".bib keys {sorted(bib.elements())} != cited {sorted(c.key for c in d.citations)}")
    if len({c.id for c in d.citations}) != listed:
        errors.append("a paper is cited under two numbers")
    return errors


class CheckLog:
    """Wraps SectionWriter.check (bench only) to note what the model first wrote for each point."""

    def __init__(self):
        from drafting import pipeline

        self.pipeline, self.original = pipeline, pipeline.SectionWriter.check
        self.points: list[dict] = []

    def __enter__(self):
        from drafting.checks import cited_numbers, split_sentences

        original, points = self.original, self.points

        def check(writer, point, text):
            body, problem = original(writer, point, text)
            sentences = split_sentences(text.strip().lstrip("-*•\"' ").strip())
            cited = cited_numbers(sentences[0]) if sentences else []
            points.append({"kind": point.kind, "n": point.source.n if point.source else None,
                           "cited": cited, "problem": problem})
            return body, problem

        self.pipeline.SectionWriter.check = check
        return self

    def __exit__(self, *exc):
        self.pipeline.SectionWriter.check = self.original


def bench_citations(generator, library, topics: list[str], sections: list[str], k: int) -> dict:
    from drafting.pipeline import draft
    from drafting.sections import parse_section
    from drafting.types import DraftRequest

    out = {}
    for name in sections:
        spec = parse_section(name)
        drafts = []
        with CheckLog() as log:
            for i, topic in enumerate(topics, 1):
                start = len(log.points)
                try:
                    d = draft(DraftRequest(spec.name, topic, k=k), library=library, generator=generator)
                except Exception as exc:  # noqa: BLE001 - a failed draft is a result too
                    drafts.append({"topic": topic, "errors": [f"draft failed: {exc!r}"], "stats": {}})
                    print(f"  {spec.name} [{i}/{len(topics)}] FAILED: {exc!r}", flush=True)
                    continue
                errors = draft_errors(d, spec.all_cited)
                drafts.append({"topic": topic, "errors": errors, "citations": len(d.citations),
                               "warnings": d.warnings, "stats": d.stats, "points": log.points[start:]})
                s = d.stats
                print(f"  {spec.name} [{i}/{len(topics)}] {'ok' if not errors else 'ERRORS ' + '; '.join(errors)}"
                      f" ({s['sentences']} sentences, {s['fallbacks']} fallbacks, {s['removed_citations']} removed, "
                      f"{s['tokens']} tokens in {s['seconds']:.1f} s)", flush=True)
        points = [p for d in drafts for p in d.get("points", [])]
        sourced = [p for p in points if p["n"] is not None]
        total = lambda key: sum(d["stats"].get(key, 0) for d in drafts)  # noqa: E731
        out[spec.name] = {
            "all_cited": spec.all_cited, "drafts": len(drafts),
            "correct": sum(not d["errors"] for d in drafts),
            "sentences": total("sentences"), "fallbacks": total("fallbacks"),
            "removed_citations": total("removed_citations"), "tokens": total("tokens"),
            "seconds": total("seconds"), "citations": sum(d.get("citations", 0) for d in drafts),
            "raw": {"source_points": len(sourced),
                    "cited_right": sum(p["cited"] == [p["n"]] for p in sourced),
                    "cited_nothing": sum(not p["cited"] for p in sourced),
                    "cited_wrong": sum(bool(p["cited"]) and p["cited"] != [p["n"]] for p in sourced),
                    "topic_points_citing": sum(bool(p["cited"]) for p in points if p["n"] is None),
                    "problems": dict(collections.Counter(p["problem"] for p in points if p["problem"]).most_common())},
            "failures": [{"topic": d["topic"], "errors": d["errors"]} for d in drafts if d["errors"]],
            "per_draft": [{k2: v for k2, v in d.items() if k2 != "points"} for d in drafts],
        }
    return out


def print_citations(result: dict, k: int) -> None:
    print(f"\n== 3. citations: SciFact claims as topics, k={k} ==")
    print(f"{'section':14s} {'drafts':>6s} {'correct':>8s} {'share':>7s} {'sentences':>9s} {'model kept':>10s} "
          f"{'fallbacks':>9s} {'removed [n]':>11s} {'cited':>6s} {'s/draft':>8s}")
    for name, r in result.items():
        kept = r["sentences"] - r["fallbacks"]
        print(f"{name:14s} {r['drafts']:6d} {r['correct']:8d} {100 * r['correct'] / max(r['drafts'], 1):6.0f}% "
              f"{r['sentences']:9d} {kept:10d} {r['fallbacks']:9d} {r['removed_citations']:11d} "
              f"{r['citations']:6d} {r['seconds'] / max(r['drafts'], 1):8.1f}")
    for name, r in result.items():
        raw = r["raw"]
        n = max(raw["source_points"], 1)
        print(f"{name}: the model's own [n] on {raw['source_points']} source sentences: right "
              f"{raw['cited_right']} ({100 * raw['cited_right'] / n:.0f}%), none {raw['cited_nothing']} "
              f"({100 * raw['cited_nothing'] / n:.0f}%), wrong {raw['cited_wrong']} ({100 * raw['cited_wrong'] / n:.0f}%)"
              + (f"; topic sentences citing something: {raw['topic_points_citing']}" if raw["topic_points_citing"]
                 else ""))
        if raw["problems"]:
            print("  replaced by the source's own sentence because: "
                  + "; ".join(f"{why} {count}" for why, count in raw["problems"].items()))
        for failure in r["failures"]:
            print(f"  WRONG: {failure['topic'][:60]!r}: {'; '.join(failure['errors'])[:300]}")
    ok = all(r["correct"] == r["drafts"] for r in result.values())
    print(f"goal 100% of drafts with correct citations: {'met' if ok else 'NOT met'}")


# -- main ---------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topics", type=int, default=20, help="SciFact claims drafted for the citation check")
    parser.add_argument("--k", type=int, default=4, help="sources per draft")
    parser.add_argument("--seed", type=int, default=13, help="seed drawing the claims used as topics")
    parser.add_argument("--reps", type=int, default=3,
                        help="rounds over the 3 throughput topics (odd rounds in the opposite order)")
    parser.add_argument("--slack-reps", type=int, default=3, help="/draft commands sent (different topics)")
    parser.add_argument("--load-reps", type=int, default=3, help="warm model loads (child processes)")
    parser.add_argument("--sections", default="related-work",
                        help="comma-separated sections for the citation check (e.g. related-work,introduction)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default, as the bot)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for one Slack draft")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 5 topics, 1 Slack command, 1 warm load, 1 thread-check round")
    parser.add_argument("--index", type=Path, default=REPO / "bench" / "results" / "scifact-index")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "drafting.json")
    parser.add_argument("--load-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_child:
        load_child(args.load_child)
        return 0
    if args.quick:
        args.topics, args.slack_reps, args.load_reps, args.reps = min(args.topics, 5), 1, 1, 1
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.root.handlers:  # bm25s sets its own logger to DEBUG when imported
        handler.setLevel(logging.WARNING)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    quiet_transformers()
    from drafting.backends.transformers_backend import TransformersGenerator
    from drafting.sections import parse_section

    sections = [parse_section(s).name for s in args.sections.split(",") if s.strip()]
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    started = time.perf_counter()
    print(f"command: {command}")
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} CPU(s), torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), load average {os.getloadavg()[0]:.2f}")

    load = bench_load(args.load_reps)
    print_load(load)

    library = retrieval_quality().open_index(args.index)
    library.embedder.encode(["warm up"])
    generator = TransformersGenerator(cache_dir=MODELS, device="cpu")
    generator.load()
    print(f"\nmodel {generator.name}, {generator.model.dtype}, device {generator.device}, "
          f"{torch.get_num_threads()} torch threads (loaded in this process in {generator.load_seconds:.2f} s); "
          f"library {library.stats()['papers']} papers, {library.stats()['passages']} passages")

    topics = load_topics(args.topics + 3 + args.slack_reps, args.seed)
    cite_topics, speed_topics, slack_topics = (topics[:args.topics], topics[args.topics:args.topics + 3],
                                               topics[args.topics + 3:])
    bare_generate(generator, [{"role": "user", "content": "Say hello."}], 4)  # first-call costs, not measured

    print("\n-- 1. throughput --", flush=True)
    throughput = bench_throughput(generator, library, speed_topics, args.k, args.reps)
    threads = bench_threads(generator, throughput.pop("first_prompt"), 1 if args.quick else 3)
    print_throughput(throughput, threads)

    print("\n-- 2. Slack --", flush=True)
    slack = bench_slack(generator, args.index, slack_topics, args.k, args.timeout)
    print_slack(slack)

    print("\n-- 3. citations --", flush=True)
    citations = bench_citations(generator, library, cite_topics, sections, args.k)
    print_citations(citations, args.k)

    elapsed = time.perf_counter() - started
    print(f"\ntotal {elapsed / 60:.1f} min; load average now {os.getloadavg()[0]:.2f}")
    summary = {"bench": "drafting", "command": command, "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "model": generator.name,
               "seed": args.seed, "k": args.k, "load": load, "throughput": throughput, "threads": threads,
               "slack": slack, "citations": citations, "seconds": round(elapsed, 1)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"results: {args.json}")
    library.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
