"""The code language model's two uses: entropy coding (compression) and sampling (generation).

Compression
-----------
:func:`encode_block` range-codes one block of ``(n_q, F)`` codes (F <= the model's ``context_frames``) with the
probabilities the model gives each code in its token order; :func:`decode_block` recovers them. Both sides walk
the block one position at a time through :meth:`CodeLM.advance` (the decoder has to: a code's probabilities depend
on the codes decoded before it), so they compute the same floats in the same order and agree *on one machine*.

This is why the LM coder is a measurement here and not a ``.tlc`` format. The static coder
(:mod:`telucodec.coding.entropy`) hands the range coder integer frequencies, identical on every machine. An LM's
probabilities come out of floating-point matrix products whose last bits depend on the CPU's kernels and thread
count (the project measures such differences with ``ATEN_CPU_CAPABILITY``), and one flipped bit in one
probability desynchronises the decoder for the rest of the block. A shippable LM coder needs integer (or
otherwise bit-exact) inference on both sides; EnCodec ships its LM coder with a warning that it is slow.

Generation
----------
:func:`continue_codes` extends a prompt frame by frame, sampling each code from the model (temperature, top-k).
Past the model's context it slides: each new chunk is conditioned on the last half-context of frames.
"""

from __future__ import annotations

import numpy as np
import torch

from telucodec.coding.entropy import _constriction  # one-line error when constriction is missing
from telucodec.tokens.lm import CodeLM
from telucodec.tokens.orders import undelay, unflatten

__all__ = ["encode_block", "decode_block", "encode_clip", "decode_clip", "continue_codes"]


def _family():
    return _constriction().stream.model.Categorical(perfect=False)


def _probs(logp: torch.Tensor) -> np.ndarray:
    return logp.double().exp().numpy()


def _check(model: CodeLM, codes) -> torch.Tensor:
    c = model.config
    codes = torch.as_tensor(np.asarray(codes, np.int64))
    if codes.ndim != 2 or codes.shape[0] != c.n_q or codes.shape[1] > c.context_frames:
        raise ValueError(f"expected ({c.n_q}, <= {c.context_frames}) codes, got {tuple(codes.shape)}")
    if codes.numel() and (codes.min() < 0 or codes.max() >= c.codebook_size):
        raise ValueError(f"codes must lie in [0, {c.codebook_size})")
    return codes


def _walk(model: CodeLM, frames: int, pick):
    """Visit every code of a block of `frames` frames in the model's token order. `pick(logp, k, forced)` returns
    the code(s) at this position: `logp` (m, K) for the m codes due now, `k` their stages. Returns (n_q, frames)."""
    c = model.config
    state = model.start()
    if c.order == "delay":
        grid = torch.full((c.n_q, frames + c.n_q - 1), model.pad, dtype=torch.long)
        prev = None
        for t in range(grid.shape[1]):
            logp = model.advance(state, prev)
            k = torch.tensor([s for s in range(c.n_q) if 0 <= t - s < frames])
            grid[k, t] = pick(logp[k], k, t - k)
            prev = grid[:, t]
        return undelay(grid)
    seq = torch.zeros(frames * c.n_q, dtype=torch.long)
    prev = None
    for i in range(len(seq)):
        logp = model.advance(state, prev)
        seq[i] = pick(logp, torch.tensor([i % c.n_q]), torch.tensor([i // c.n_q]))[0]
        prev = seq[i]
    return unflatten(seq, c.n_q)


@torch.no_grad()
def encode_block(model: CodeLM, codes) -> np.ndarray:
    """One block of codes -> its range-coded uint32 words."""
    codes = _check(model, codes)
    enc, fam = _constriction().stream.queue.RangeEncoder(), _family()

    def pick(logp, k, f):
        sym = codes[k, f]
        enc.encode(sym.numpy().astype(np.int32), fam, _probs(logp))
        return sym

    _walk(model, codes.shape[1], pick)
    return np.asarray(enc.get_compressed(), dtype=np.uint32)


@torch.no_grad()
def decode_block(model: CodeLM, words, frames: int) -> np.ndarray:
    """The inverse of :func:`encode_block`: ``(n_q, frames)`` int64 codes."""
    dec, fam = _constriction().stream.queue.RangeDecoder(np.ascontiguousarray(words, np.uint32)), _family()
    return _walk(
        model, frames, lambda logp, k, f: torch.as_tensor(dec.decode(fam, _probs(logp)), dtype=torch.long)
    ).numpy()


def encode_clip(model: CodeLM, codes) -> list:
    """A clip's ``(n_q, F)`` codes -> one word array per block of ``context_frames`` frames."""
    codes = np.asarray(codes)
    f = model.config.context_frames
    return [encode_block(model, codes[:, a : a + f]) for a in range(0, codes.shape[1], f)]


def decode_clip(model: CodeLM, blocks: list, frames: int) -> np.ndarray:
    """The inverse of :func:`encode_clip` for a clip of `frames` frames."""
    f = model.config.context_frames
    return np.concatenate([decode_block(model, w, min(f, frames - i * f)) for i, w in enumerate(blocks)], axis=1)


@torch.no_grad()
def continue_codes(
    model: CodeLM, prompt, frames: int, temperature: float = 1.0, top_k: int | None = None, seed: int = 0
) -> np.ndarray:
    """`frames` new frames of codes after `prompt` (``(n_q, P)``), each code sampled from the model. Returns the
    new frames only, ``(n_q, frames)``."""
    c = model.config
    prompt = _check(model, np.asarray(prompt)[:, -c.context_frames :]) if len(prompt[0]) else None
    gen = torch.Generator().manual_seed(seed)
    keep = c.context_frames // 2
    have = prompt if prompt is not None else torch.zeros((c.n_q, 0), dtype=torch.long)
    new = []
    while sum(x.shape[1] for x in new) < frames:
        context = have[:, -keep:] if have.shape[1] else have
        p = context.shape[1]
        step = min(c.context_frames - p, frames - sum(x.shape[1] for x in new))

        def pick(logp, k, f, context=context, p=p):
            forced = f < p
            out = torch.empty(len(k), dtype=torch.long)
            out[forced] = context[k[forced], f[forced]]
            if (~forced).any():
                z = logp[~forced] / max(temperature, 1e-6)
                if top_k:
                    z = z.masked_fill(z < z.topk(top_k, -1).values[:, -1:], -float("inf"))
                out[~forced] = torch.multinomial(z.softmax(-1), 1, generator=gen)[:, 0]
            return out

        block = _walk(model, p + step, pick)
        new.append(block[:, p:])
        have = torch.cat([have, block[:, p:]], 1)
    return torch.cat(new, 1).numpy()
