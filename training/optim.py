"""The optimizer, the learning-rate schedule and sizes the training loop derives from a spec."""

from __future__ import annotations

import math


def linear_schedule(step: int, *, warmup: int, total: int) -> float:
    """Learning-rate factor: linear warmup from 0 over `warmup` steps, then linear decay to 0
    (as transformers' get_linear_schedule_with_warmup)."""
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def steps_per_epoch(examples: int, batch_size: int, accumulation: int) -> int:
    """Optimizer steps in one pass: the last, smaller group of batches is a step too."""
    return max(1, math.ceil(math.ceil(examples / batch_size) / accumulation))


def fit_length(model, requested: int, log) -> int:
    """`requested`, or the model's longest input when that is shorter."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if isinstance(limit, int) and 0 < limit < requested:
        log(f"max_length {requested} is longer than the model accepts; using {limit}")
        return limit
    return requested


def make_optimizer(model, hp, total_steps: int):
    """AdamW (fused: one kernel for all parameters; no decay on biases and norms) and the
    linear warmup/decay schedule."""
    from functools import partial

    import torch

    decay, plain = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else plain).append(param)
    groups = [{"params": decay, "weight_decay": hp.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    try:
        optimizer = torch.optim.AdamW(groups, lr=hp.learning_rate, fused=True)
    except (RuntimeError, TypeError):  # a device or dtype without the fused kernel
        optimizer = torch.optim.AdamW(groups, lr=hp.learning_rate)
    warmup = hp.warmup_steps if hp.warmup_steps is not None else math.ceil(hp.warmup_ratio * total_steps)
    schedule = partial(linear_schedule, warmup=warmup, total=total_steps)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def gpu_memory_mb(device) -> float | None:
    """Peak GPU memory of the run so far (None on CPU)."""
    import torch

    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
