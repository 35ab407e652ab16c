"""Whole arrays coded a piece at a time (:func:`encode_chunked`, :func:`decode_chunked`): the stream coders of
:mod:`telucodec.coding.streaming` fed ``chunk_seconds`` at a time, with the result of one piece. ``CodecModel.encode``
and ``CodecModel.decode`` use them."""

from __future__ import annotations

import numpy as np
import torch

from telucodec.coding.streaming import StreamDecoder, StreamEncoder, chunk_frames

__all__ = ["encode_chunked", "decode_chunked"]


def encode_chunked(model, wav: np.ndarray, n_q: int, chunk_seconds: float | None = None) -> np.ndarray:
    """(n_q, frames) int64 codes of a mono float32 waveform at the model's rate, `chunk_seconds` at a time
    (None: DEFAULT_CHUNK_SECONDS; 0: the whole input in one piece). Identical to one piece."""
    chunk = chunk_frames(model, chunk_seconds)
    if chunk is None or wav.size <= chunk * model.config.hop_length:
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None, None].to(model.device)
        return model.codec.encode_tensor(x, n_q)[0].cpu().numpy().astype(np.int64)
    enc = StreamEncoder(model, n_q=n_q, min_frames=chunk, max_frames=chunk)
    parts = [enc.push(wav), enc.flush()]
    return np.concatenate(parts, axis=1)


def decode_chunked(
    model, codes: np.ndarray, num_samples: int | None = None, chunk_seconds: float | None = None
) -> np.ndarray:
    """float32 waveform of (n_q, frames) codes, `chunk_seconds` at a time; equal to one piece to float rounding."""
    chunk = chunk_frames(model, chunk_seconds)
    frames = codes.shape[1]
    hop = model.config.hop_length
    odd_length = num_samples is not None and num_samples <= (frames - 1) * hop  # not a .tlc's: whole-file rules
    if chunk is None or frames <= chunk or odd_length:
        c = torch.as_tensor(codes, dtype=torch.long, device=model.device)[None]
        return model.codec.decode_tensor(c, num_samples)[0, 0].float().cpu().numpy()
    dec = StreamDecoder(
        model, n_q=codes.shape[0], num_frames=frames, num_samples=num_samples, min_frames=chunk, max_frames=chunk
    )
    length = min(num_samples, frames * hop) if num_samples is not None else frames * hop
    out = np.empty(length, np.float32)
    at = 0
    for i in range(0, frames, chunk):
        y = dec.push(codes[:, i : i + chunk])
        out[at : at + y.size] = y
        at += y.size
    y = dec.flush()
    out[at : at + y.size] = y
    assert at + y.size == length
    return out
