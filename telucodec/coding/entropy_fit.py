"""Fitting an entropy model (:class:`telucodec.coding.entropy.EntropyModel`) on codes: per stage, context classes of
the previous stage's code found by distributional clustering, and smoothed, quantized priors (the model's
description: :mod:`telucodec.coding.entropy`). ``python -m telucodec fit-entropy`` runs :func:`fit_on_clips`."""

from __future__ import annotations

import numpy as np

from telucodec.coding.entropy import MAX_FREQ, ROW_TOTAL, EntropyModel

__all__ = ["fit", "collect_codes", "fit_on_clips", "DEFAULT_CONTEXTS", "DEFAULT_SMOOTHING"]

DEFAULT_CONTEXTS = 16
DEFAULT_SMOOTHING = 50.0


def _quantize(p: np.ndarray) -> np.ndarray:
    """A distribution over K codes -> integers in 1..MAX_FREQ summing to ROW_TOTAL (largest remainders first)."""
    k = p.size
    if k * MAX_FREQ < ROW_TOTAL:
        raise ValueError(f"a codebook of {k} codes is too small for entropy coding")
    free = ROW_TOTAL - k
    raw = p / p.sum() * free
    f = np.floor(raw).astype(np.int64)
    rem = free - int(f.sum())
    if rem:
        f[np.argsort(-(raw - f), kind="stable")[:rem]] += 1
    f += 1
    excess = int(np.clip(f - MAX_FREQ, 0, None).sum())
    f = np.minimum(f, MAX_FREQ)
    for i in np.argsort(-f, kind="stable"):  # give what the cap took to the largest others
        if excess == 0:
            break
        give = min(excess, MAX_FREQ - int(f[i]))
        f[i] += give
        excess -= give
    assert f.sum() == ROW_TOTAL and f.min() >= 1 and f.max() <= MAX_FREQ
    return f.astype(np.int16)


def _cluster(counts: np.ndarray, m: int, iters: int) -> np.ndarray:
    """Context classes of the previous codes: k-means of the rows of `counts` (previous code x code) with the
    Kullback-Leibler divergence (a row goes to the class whose distribution gives its counts the highest
    likelihood). Starts from the m most used previous codes; previous codes never seen join the biggest class."""
    k = counts.shape[0]
    if m <= 1:
        return np.zeros(k, np.int64)
    used = counts.sum(1)
    start = np.argsort(-used, kind="stable")[:m]
    centres = counts[start] + 1.0
    assign = None
    for _ in range(iters):
        centres /= centres.sum(1, keepdims=True)
        new = (counts @ np.log(centres).T).argmax(1)
        if assign is not None and np.array_equal(new, assign):
            break
        assign = new
        centres = np.zeros((m, k))
        np.add.at(centres, assign, counts)
        centres += 1.0
    mass = np.bincount(assign, weights=used, minlength=m)
    assign[used == 0] = int(mass.argmax())
    return assign


def fit(
    codes_by_n_q: dict,
    codebook_size: int,
    contexts: int = DEFAULT_CONTEXTS,
    smoothing: float = DEFAULT_SMOOTHING,
    iters: int = 20,
) -> EntropyModel:
    """An :class:`EntropyModel` from training codes: ``{n_q: [(n_q, frames) int arrays, ...]}``. ``contexts`` = M
    classes of the previous stage's code (1: per-stage priors); ``smoothing``: the weight of the stage's overall
    distribution in each class's (a Dirichlet prior, in frames). The report says, per n_q, the frames fitted on
    and the bits per code the model gives them (fit data: an optimistic figure)."""
    k = int(codebook_size)
    if not 1 <= contexts <= 256:
        raise ValueError(f"contexts must be between 1 and 256, got {contexts}")
    tables, report = (
        {},
        {"contexts": int(contexts), "smoothing": float(smoothing), "frames": {}, "fit_bits_per_code": {}},
    )
    for n_q, parts in sorted(codes_by_n_q.items()):
        codes = (
            np.concatenate([np.asarray(c, np.int64).reshape(n_q, -1) for c in parts], axis=1)
            if parts
            else np.zeros((n_q, 0), np.int64)
        )
        if codes.shape[1] == 0:
            raise ValueError(f"no frames to fit the entropy model on at n_q={n_q}")
        if codes.min() < 0 or codes.max() >= k:
            raise ValueError(f"codes must lie in [0, {k})")
        classes = np.zeros((n_q, k), np.uint8)
        freqs = np.zeros((n_q, contexts, k), np.int16)
        for s in range(n_q):
            marginal = np.bincount(codes[s], minlength=k) + 0.5
            marginal /= marginal.sum()
            if s == 0:
                freqs[s, :] = _quantize(marginal)
                continue
            pairs = np.bincount(codes[s - 1] * k + codes[s], minlength=k * k).reshape(k, k).astype(np.float64)
            assign = _cluster(pairs, contexts, iters)
            grouped = np.zeros((contexts, k))
            np.add.at(grouped, assign, pairs)
            classes[s] = assign
            for m in range(contexts):
                freqs[s, m] = _quantize(grouped[m] + smoothing * marginal)
        tables[n_q] = (classes, freqs)
        report["frames"][str(n_q)] = int(codes.shape[1])
    model = EntropyModel(tables, report)
    for n_q, parts in sorted(codes_by_n_q.items()):
        bits = sum(model.bits(np.asarray(c).reshape(n_q, -1)) for c in parts)
        model.report["fit_bits_per_code"][str(n_q)] = round(bits / (n_q * report["frames"][str(n_q)]), 4)
    return model


def collect_codes(model, clips, n_qs=None) -> dict:
    """``{n_q: [codes of each clip]}``: `clips` (float32 arrays at the model's rate) coded by the CodecModel
    `model` at each of `n_qs` (default: every stage count its bitrates use)."""
    from telucodec.coding.chunked import encode_chunked

    cfg = model.config
    n_qs = n_qs or [n for n in cfg.n_q_choices if n <= cfg.n_q] or [cfg.n_q]
    out = {int(n): [] for n in n_qs}
    for wav in clips:
        wav = np.ascontiguousarray(wav, dtype=np.float32)
        for n, parts in out.items():
            parts.append(encode_chunked(model, wav, n))
    return out


def fit_on_clips(
    model, clips, contexts: int = DEFAULT_CONTEXTS, smoothing: float = DEFAULT_SMOOTHING, n_qs=None
) -> EntropyModel:
    """:func:`fit` on the codes `model` gives `clips` (its training speech) at each of its stage counts."""
    return fit(collect_codes(model, clips, n_qs), model.config.codebook_size, contexts, smoothing)
