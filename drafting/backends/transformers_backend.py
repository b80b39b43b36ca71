"""Local generation with transformers: SmolLM2 from its GGUF by default, or any HF model folder.

GGUF weights are dequantized by transformers on load, which takes ~20 s on a small CPU; the
result is saved once under `cache_dir` (safetensors) so later starts load in under a second.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Sequence

from core.errors import ConfigError
from drafting.backends.locate import ModelFiles, locate
from drafting.generator import Generation, GenerationError, Message, OnText, cut_at_stop

log = logging.getLogger("labmate.drafting")


def cache_folder(files: ModelFiles, cache_dir: Path) -> Path:
    """Where a GGUF's dequantized copy lives; the name changes when the GGUF file changes."""
    stat = files.gguf_path.stat()
    import transformers

    tag = f"{files.gguf_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{transformers.__version__}"
    digest = hashlib.sha256(tag.encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{Path(files.gguf).stem}-{digest}"


def load_model(files: ModelFiles, cache_dir: Path | None):
    """(model, tokenizer) in float32 on the CPU; GGUF files go through the dequantized cache."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if files.gguf is None:
        return AutoModelForCausalLM.from_pretrained(files.folder), AutoTokenizer.from_pretrained(files.folder)
    cached = cache_folder(files, cache_dir) if cache_dir else None
    if cached and (cached / "config.json").exists():
        return AutoModelForCausalLM.from_pretrained(cached), AutoTokenizer.from_pretrained(cached)
    log.info("dequantizing %s (first load only)", files.gguf_path)
    model = AutoModelForCausalLM.from_pretrained(files.folder, gguf_file=files.gguf)
    tokenizer = AutoTokenizer.from_pretrained(files.folder, gguf_file=files.gguf)
    if cached:
        _save_cache(model, tokenizer, cached)
    return model, tokenizer


def _save_cache(model, tokenizer, target: Path) -> None:
    """Write to a temporary folder, then rename: a crash or a second process never leaves half a cache."""
    # The weights are plain float32 now; the GGUF quantizer marker only blocks saving them.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first; its copy is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:  # a read-only or full disk costs speed, not the draft
        log.warning("could not cache dequantized weights in %s: %s", target, exc)


class TransformersGenerator:
    """A causal LM run with `model.generate`, streaming through a callback, one call at a time."""

    def __init__(self, model: str = "default", cache_dir: Path | None = None, device: str = "auto",
                 temperature: float = 0.0, threads: int = 0):
        self.files = locate(model)
        self.name = f"transformers:{self.files.gguf or self.files.folder.name}"
        self.cache_dir = cache_dir
        self.device_setting = device
        self.temperature = temperature
        self.threads = threads
        self._model = None
        self._tokenizer = None
        self._lock = threading.RLock()  # the public properties load under it too
        self.load_seconds: float | None = None

    def load(self) -> None:
        """Load the model now (it otherwise loads on the first `generate`)."""
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> None:
        if self._model is not None:
            return
        import torch

        start = time.perf_counter()
        try:
            model, tokenizer = load_model(self.files, self.cache_dir)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"The drafting model in {self.files.folder} could not be loaded ({exc}). "
                              "Point [drafting] model at a working model folder or .gguf file.") from exc
        device = self.device_setting
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda":
            model = model.to(device=device, dtype=torch.bfloat16)
        self._model, self._tokenizer, self.device = model.eval(), tokenizer, device
        self.load_seconds = time.perf_counter() - start

    @property
    def model(self):
        self.load()
        return self._model

    @property
    def tokenizer(self):
        self.load()
        return self._tokenizer

    def encode_chat(self, messages: Sequence[Message], prefix: str = ""):
        """Token ids (1 x n tensor on the model's device) of a chat prompt ready for the answer,
        whose first words are `prefix` when given (the model continues them)."""
        options = dict(add_generation_prompt=True)
        if prefix:
            messages = [*messages, {"role": "assistant", "content": prefix}]
            options = dict(continue_final_message=True)
        ids = self.tokenizer.apply_chat_template(list(messages), return_tensors="pt", return_dict=True,
                                                 **options)["input_ids"]
        return ids.to(self.device)

    def generate(self, messages: Sequence[Message], *, max_new_tokens: int, stop: Sequence[str] = (),
                 on_text: OnText | None = None, prefix: str = "") -> Generation:
        """Write an answer to `messages`; see the Generator protocol."""
        with self._lock:
            self._load_locked()
            try:
                return self._generate(self.encode_chat(messages, prefix), max_new_tokens, stop, on_text)
            except RuntimeError as exc:  # out of memory, bad device
                raise GenerationError(f"The drafting model failed while writing ({exc}).") from exc

    def _generate(self, prompt, max_new_tokens, stop, on_text) -> Generation:
        import torch

        streamer = _Streamer(self._tokenizer, stop, on_text)
        options = dict(max_new_tokens=max_new_tokens, streamer=streamer,
                       stopping_criteria=[streamer.should_stop], pad_token_id=self._tokenizer.eos_token_id)
        if self.temperature > 0:
            options.update(do_sample=True, temperature=self.temperature)
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        from retrieval.embedder import torch_threads

        start = time.perf_counter()
        with torch.inference_mode(), torch_threads(self.threads):
            output = self._model.generate(prompt, attention_mask=torch.ones_like(prompt), **options)
        tokens = int(output.shape[1] - prompt.shape[1])
        return Generation(streamer.final_text(), tokens, time.perf_counter() - start)


class _Streamer:
    """Receives token ids from `generate`, decodes them incrementally, passes new text on, and
    tells `generate` to stop once a stop string appears (text from the stop string on is kept back)."""

    def __init__(self, tokenizer, stop: Sequence[str], on_text: OnText | None):
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.on_text = on_text
        self.ids: list[int] = []
        self.sent = ""
        self.stopped = False
        self._prompt_seen = False
        self.hold = max((len(s) for s in self.stop), default=1) - 1

    def put(self, value) -> None:
        if not self._prompt_seen:  # the first call carries the prompt
            self._prompt_seen = True
            return
        self.ids.extend(int(t) for t in value.reshape(-1).tolist())
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
            return
        cut, found = cut_at_stop(text, self.stop)
        self.stopped = self.stopped or found
        # Keep back a tail that could be the start of a stop string.
        visible = cut if found else cut[: max(len(self.sent), len(cut) - self.hold)]
        self._emit(visible)

    def _emit(self, visible: str) -> None:
        if len(visible) > len(self.sent) and visible.startswith(self.sent):
            if self.on_text:
                self.on_text(visible[len(self.sent):])
            self.sent = visible

    def end(self) -> None:
        self._emit(self.final_text())

    def final_text(self) -> str:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        return cut_at_stop(text, self.stop)[0]

    def should_stop(self, input_ids, scores, **kwargs):
        import torch

        return torch.full((input_ids.shape[0],), self.stopped, dtype=torch.bool, device=input_ids.device)
