"""Training a :class:`~telucodec.tokens.lm.CodeLM` on a codec's codes, and scoring it in bits per frame.

Codes come as one ``(n_q, frames)`` array with ``starts`` marking where each clip begins
(``scripts/code_tokens.py`` writes them for the speaker lists). A training step takes ``batch`` windows of
``context_frames`` frames, each inside one clip, drawn at random; AdamW with a linear warm-up and a cosine decay.
Every ``eval_every`` steps the run scores the tuning clips (:func:`block_bits`), appends a line to ``curve.json``
and writes an atomic checkpoint from which :func:`train` resumes exactly; ``best.safetensors`` keeps the weights
that scored best on the tuning clips.

:func:`block_bits` is what an entropy coder with this model would spend (before the coder's few bytes of
overhead): each clip cut into blocks of ``context_frames`` frames, each block coded on its own, the model's
cross-entropy in bits for every code, summed per stage.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from telucodec.coding.checkpoint import (
    keep_last,
    latest_checkpoint,
    load_checkpoint,
    load_weights_safetensors,
    save_checkpoint,
    save_weights_safetensors,
)
from telucodec.tokens.lm import CodeLM, LMConfig

__all__ = ["CodeSet", "block_bits", "train", "save_lm", "load_lm"]


class CodeSet:
    """A list's codes: ``codes`` ``(n_q, frames)`` int64 and ``starts`` (clips + 1) frame offsets."""

    def __init__(self, codes, starts, speakers=None):
        self.codes = torch.as_tensor(np.asarray(codes, np.int64))
        self.starts = np.asarray(starts, np.int64)
        self.speakers = None if speakers is None else list(speakers)
        if self.starts[0] != 0 or self.starts[-1] != self.codes.shape[1] or np.any(np.diff(self.starts) < 0):
            raise ValueError("starts must run from 0 to the frame count, never decreasing")

    @classmethod
    def load(cls, path) -> CodeSet:
        with np.load(path) as z:
            return cls(z["codes"], z["starts"], z["speakers"] if "speakers" in z else None)

    def clips(self):
        for a, b in zip(self.starts[:-1], self.starts[1:]):
            yield self.codes[:, a:b]

    def window_starts(self, frames: int) -> np.ndarray:
        """Every frame where a window of `frames` frames fits inside one clip."""
        return np.concatenate(
            [np.arange(a, b - frames + 1) for a, b in zip(self.starts[:-1], self.starts[1:]) if b - a >= frames]
            or [np.zeros(0, np.int64)]
        )


@torch.no_grad()
def block_bits(model: CodeLM, clips, batch: int = 64) -> np.ndarray:
    """Bits the model gives each code of `clips` (an iterable of ``(n_q, F)`` arrays), each clip cut into blocks
    of ``context_frames`` frames coded independently: ``(clips, n_q)`` sums of bits per stage."""
    model.eval()
    f = model.config.context_frames
    blocks, owner = [], []
    clips = [torch.as_tensor(np.asarray(c, np.int64)) for c in clips]
    for i, c in enumerate(clips):
        for a in range(0, c.shape[1], f):
            blocks.append(c[:, a : a + f])
            owner.append(i)
    out = np.zeros((len(clips), model.config.n_q))
    by_len = {}
    for b, i in zip(blocks, owner):
        by_len.setdefault(b.shape[1], []).append((b, i))
    for items in by_len.values():
        for j in range(0, len(items), batch):
            part = items[j : j + batch]
            lp = model.code_logprobs(torch.stack([b for b, _ in part]))  # (B, n_q, F) nats
            bits = (-lp.sum(-1) / math.log(2)).double().numpy()
            for (_, i), row in zip(part, bits):
                out[i] += row
    return out


def _lr(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def save_lm(path, model: CodeLM, extra: dict | None = None, half: bool = True) -> Path:
    """The weights (float16 when `half`) and the config as a .safetensors file."""
    tensors = {k: (v.half() if half else v).contiguous() for k, v in model.state_dict().items()}
    meta = {"code_lm": json.dumps(model.config.to_dict()), **{k: json.dumps(v) for k, v in (extra or {}).items()}}
    return save_weights_safetensors(path, tensors, meta)


def load_lm(path) -> CodeLM:
    """A CodeLM from :func:`save_lm`'s file, in float32, in eval mode."""
    tensors, meta = load_weights_safetensors(path)
    if "code_lm" not in meta:
        raise ValueError(f"{path} holds no code language model")
    model = CodeLM(LMConfig(**json.loads(meta["code_lm"])))
    model.load_state_dict({k: v.float() for k, v in tensors.items()})
    return model.eval()


def train(
    config: LMConfig,
    train_set: CodeSet,
    tune_set: CodeSet,
    out_dir,
    steps: int,
    batch: int = 16,
    lr: float = 1e-3,
    weight_decay: float = 0.1,
    warmup: int = 200,
    eval_every: int = 300,
    seed: int = 0,
    log=print,
) -> CodeLM:
    """Train (or resume, from ``out_dir``'s latest checkpoint) a CodeLM for `steps` steps."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = CodeLM(config)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and not n.startswith("pos")]
    other = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and not n.startswith("pos"))]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.95),
    )
    gen = torch.Generator().manual_seed(seed)
    starts = torch.as_tensor(train_set.window_starts(config.context_frames))
    if len(starts) == 0:
        raise ValueError(f"no training clip holds {config.context_frames} frames")
    step, curve, best, seconds = 0, [], math.inf, 0.0
    last = latest_checkpoint(out)
    if last is not None:
        state = load_checkpoint(last)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        step, curve, best, seconds = state["step"], state["curve"], state["best"], state["seconds"]
        log(f"resumed from {last} at step {step}")
    tune_frames = int(tune_set.starts[-1])
    offsets = torch.arange(config.context_frames)
    while step < steps:
        t0 = time.perf_counter()
        model.train()
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, lr, warmup)
        pick = starts[torch.randint(len(starts), (batch,), generator=gen)]
        windows = train_set.codes[:, pick[:, None] + offsets].transpose(0, 1)  # (B, n_q, F)
        loss = -model.code_logprobs(windows).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seconds += time.perf_counter() - t0
        if step % eval_every == 0 or step == steps:
            bits = block_bits(model, tune_set.clips()).sum(0) / tune_frames
            row = {
                "step": step,
                "frames_seen": step * batch * config.context_frames,
                "train_seconds": round(seconds, 1),
                "train_bits_per_code": round(loss.item() / math.log(2), 4),
                "tune_bits_per_frame": round(float(bits.sum()), 3),
                "tune_bits_per_stage": [round(float(b), 4) for b in bits],
            }
            curve.append(row)
            log(json.dumps(row))
            if row["tune_bits_per_frame"] < best:
                best = row["tune_bits_per_frame"]
                save_lm(out / "best.safetensors", model, {"step": step, "tune_bits_per_frame": best}, half=False)
            save_checkpoint(
                out / f"step_{step:08d}.pt",
                {
                    "model": model.state_dict(),
                    "opt": opt.state_dict(),
                    "gen": gen.get_state(),
                    "step": step,
                    "curve": curve,
                    "best": best,
                    "seconds": seconds,
                },
            )
            keep_last(out, 1)
            tmp = out / "curve.json.tmp"
            tmp.write_text(json.dumps({"config": config.to_dict(), "curve": curve}, indent=1))
            tmp.replace(out / "curve.json")
    return model
