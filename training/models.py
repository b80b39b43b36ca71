"""Models on disk and on the device: the base model a job starts from, the device it runs on,
and the trained model it keeps (`best/`), saved so that `predict` can reload it alone.

A trained model folder holds what `save_pretrained` writes (for LoRA: the adapter) plus
`labmate.json`: the task, the labels, max_length and, for LoRA, where the base model lies.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError, NotFoundError, UserError
from core.models import default_encoder, default_gguf

META_FILE = "labmate.json"
CLASSES = {"token-classification": "AutoModelForTokenClassification",
           "text-classification": "AutoModelForSequenceClassification",
           "causal-lm": "AutoModelForCausalLM"}


@dataclass(frozen=True)
class BaseModel:
    """A Hugging Face model folder, or a GGUF file in `folder` (`gguf` set)."""

    folder: Path
    gguf: str | None = None

    def describe(self) -> str:
        return str(self.folder / self.gguf) if self.gguf else str(self.folder)


def resolve_base(task: str, base_model: str) -> BaseModel:
    """ "default" (MiniLM for the classifiers, the SmolLM2 GGUF for causal-lm), a model folder
    (with config.json, or exactly one .gguf), or a .gguf file."""
    if base_model == "default":
        if task == "causal-lm":
            path = default_gguf()
            return BaseModel(path.parent, path.name)
        return BaseModel(default_encoder())
    path = Path(base_model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return BaseModel(path.parent, path.name)
    if path.is_dir() and (path / "config.json").is_file():
        return BaseModel(path)
    ggufs = sorted(path.glob("*.gguf")) if path.is_dir() else []
    if len(ggufs) == 1:
        return BaseModel(path, ggufs[0].name)
    raise ConfigError(f"base_model {base_model!r} is not a model on this machine: give \"default\", a Hugging "
                      "Face model folder (with config.json) or a .gguf file (labmate never downloads models).")


def pick_device(device: str = "auto"):
    """torch.device for "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N"."""
    import torch

    if device in ("", "auto"):
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for, but no CUDA GPU is visible here. Set [training] "
                          'device = "auto" or "cpu".')
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise ConfigError(f'device {device!r} is not a device: use "auto", "cpu", "cuda" or "cuda:N".') from None
    return torch.device("cuda:0") if chosen.type == "cuda" and chosen.index is None else chosen


def describe_device(device) -> str:
    """"cpu", or "cuda:0 (NVIDIA ...)"."""
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def autocast(device):
    """bf16 autocast on CUDA devices that support it (fp32 master weights stay); else nothing."""
    import torch

    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def quiet_loading():
    """Hide transformers' progress bars and load reports (a fresh classifier head is expected)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()


def load_base(task: str, base: BaseModel, labels: list[str], lora=None):
    """(model, tokenizer) to fine-tune: a fresh head for `labels`, or LoRA-wrapped for causal-lm."""
    import transformers

    kwargs = {"gguf_file": base.gguf} if base.gguf else {}
    with quiet_loading():
        tokenizer = transformers.AutoTokenizer.from_pretrained(base.folder, **kwargs)
        if labels:
            kwargs.update(num_labels=len(labels), id2label=dict(enumerate(labels)),
                          label2id={label: i for i, label in enumerate(labels)}, ignore_mismatched_sizes=True)
        model = getattr(transformers, CLASSES[task]).from_pretrained(base.folder, **kwargs)
    if task != "causal-lm" and not tokenizer.is_fast:
        raise UserError(f"The tokenizer of {base.describe()} has no fast (Rust) version; labmate needs one to "
                        "align labels with words. Use a model folder with a tokenizer.json.")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if lora is not None:
        model = _with_lora(model, lora)
    return model, tokenizer


def _with_lora(model, lora):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(task_type="CAUSAL_LM", r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=list(lora.target_modules))
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise UserError(f"LoRA cannot wrap this model ({exc}). Set lora.target_modules in the spec to module "
                        "names the model has (e.g. [\"q_proj\", \"v_proj\"]).") from None


def save_model(model, tokenizer, target: Path, meta: dict) -> None:
    """save_pretrained into a temporary folder, then swap it in: a kill never leaves half a model."""
    temp = target.with_name(target.name + ".tmp")
    shutil.rmtree(temp, ignore_errors=True)
    with quiet_loading():
        if hasattr(model, "peft_config"):  # the adapter alone; the embeddings are not trained
            model.save_pretrained(temp, save_embedding_layers=False)
        else:
            model.save_pretrained(temp)
        tokenizer.save_pretrained(temp)
    (temp / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    replace_dir(temp, target)


def read_meta(model_dir: Path) -> dict:
    """The labmate.json of a trained model folder; NotFoundError saying what to give instead."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise NotFoundError(f"There is no trained model at {model_dir}. Train one first (`labmate train submit`), "
                            "then give the id of a job that succeeded.")
    meta_path = model_dir / META_FILE
    if not meta_path.is_file():
        raise NotFoundError(f"{model_dir} holds no trained labmate model (no {META_FILE}). Give the `best` folder "
                            "of a finished training job, e.g. `labmate train predict JOB_ID ...`.")
    return json.loads(meta_path.read_text(encoding="utf-8"))


def load_trained(model_dir: Path, device=None):
    """(model, tokenizer, meta) of a folder `save_model` wrote, in eval mode on `device`."""
    import transformers

    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    with quiet_loading():
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
        if meta.get("lora"):
            from peft import PeftModel

            base = BaseModel(Path(meta["base"]["folder"]), meta["base"].get("gguf"))
            kwargs = {"gguf_file": base.gguf} if base.gguf else {}
            model = transformers.AutoModelForCausalLM.from_pretrained(base.folder, **kwargs)
            model = PeftModel.from_pretrained(model, model_dir)
        else:
            model = getattr(transformers, CLASSES[meta["task"]]).from_pretrained(model_dir)
    if device is not None:
        model.to(device)
    return model.eval(), tokenizer, meta


def replace_dir(temp: Path, target: Path) -> None:
    """Put folder `temp` in place of `target`. Between the two renames only `target.old` exists;
    `recover_dir` puts it back, so a reader always finds a whole folder."""
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(temp, target)
    shutil.rmtree(old, ignore_errors=True)


def recover_dir(target: Path) -> Path:
    """`target`, restored from `target.old` when a kill fell between `replace_dir`'s renames."""
    old = target.with_name(target.name + ".old")
    if not target.exists() and old.is_dir():
        os.replace(old, target)
    return target


def read_checkpoint(folder: Path) -> dict | None:
    """The state dict of checkpoint `folder` (after repairing a swap a kill interrupted), or None."""
    path = recover_dir(folder) / "state.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def save_checkpoint(folder: Path, state: dict, model=None, optimizer=None, scheduler=None) -> None:
    """Write `state` (and, with a model: its trainable weights, the optimizer, the scheduler and
    the random generators) into a temporary folder, then swap it in for `folder`."""
    import torch

    temp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    if model is not None:
        trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        torch.save({k: v for k, v in model.state_dict().items() if k in trainable}, temp / "model.pt")
        torch.save(optimizer.state_dict(), temp / "optimizer.pt")
        torch.save(scheduler.state_dict(), temp / "scheduler.pt")
        torch.save(_rng_state(), temp / "rng.pt")
    (temp / "state.json").write_text(json.dumps(state), encoding="utf-8")
    replace_dir(temp, folder)


def restore_checkpoint(folder: Path, model, optimizer, scheduler, device) -> None:
    """Load what `save_checkpoint` wrote into a freshly built model, optimizer and scheduler."""
    import torch

    weights = torch.load(folder / "model.pt", map_location=device)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    if unexpected or trainable & set(missing):
        raise UserError(f"The checkpoint in {folder} does not fit the model (the base model changed?). "
                        "Delete that folder to train from the start.")
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location=device))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt"))
    # Python's random state is a tuple of ints: safe, but not a tensor, hence weights_only=False.
    _set_rng_state(torch.load(folder / "rng.pt", weights_only=False))


def _rng_state() -> dict:
    import random

    import torch

    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    import random

    import torch

    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
