"""Entropy coding of the codes: static priors fitted on training speech, range-coded with ``constriction``.

A version 1 ``.tlc`` file spends ``log2(K)`` bits on every code (10 for K = 1024), although the codes of speech are
far from uniform: some codewords are used much more than others, and which codeword a residual stage picks depends
strongly on what the stage before it picked (the size of the residual it left). A version 2 file codes them with a
small static model that ships inside the model's ``.safetensors`` file (results/entropy/README.md has the numbers).

The model
---------
For every stage count ``n_q`` it codes at (3, 6 and 12 for the shipped model: 1.5, 3 and 6 kbps; envelope codes,
:mod:`telucodec.codec.envelope`, are stages like the others) and every stage ``s < n_q``:

* ``classes[s]``, ``K`` bytes: the context class (0..M-1) of each code of stage ``s - 1`` in the same frame
  (all 0 for stage 0, which has no stage before it);
* ``freqs[s, m]``, ``K`` integers: the distribution of stage ``s``'s code in context class ``m``, each in
  1..32767 and summing to 2**16.

So a code is coded with a prior conditioned on the previous stage's code through one of ``M`` classes (``M = 1``:
per-stage priors; ``M = 16`` by default: measured better, results/entropy/README.md).
:func:`telucodec.coding.entropy_fit.fit` finds the classes by clustering the rows of the (previous code, code) count
matrix (k-means with the Kullback-Leibler divergence, "distributional clustering") and gives each class its counts
plus ``smoothing`` x the stage's overall distribution (a Dirichlet prior), so a pair never seen in training keeps a
non-zero probability; after quantization every code has at least 1/65536 in every context, and none more than 1/2.

Exact integer coding
--------------------
Encoder and decoder must agree bit for bit on every machine, so no float probability reaches the coder. Each row
is scaled to constriction's 24-bit precision with integers only: ``f24 = f16 * (2**24 - K) // 2**16``, the
remainder (``< K``) added one each to the first codes; the row goes to ``constriction.stream.model.Categorical
(perfect=False)`` as float64, which holds these integers exactly. Its quantization then computes
``scale = (2**24 - K) / sum(f24) = 1.0`` and ``cdf(i) = sum(f24[:i]) + i`` without any rounding: code ``i`` has
probability ``(f24[i] + 1) / 2**24`` everywhere. Since no probability exceeds 1/2, every code costs more than one
bit, which bounds the codes a block of a given size can hold (the ``.tlc`` reader checks it, so a small hostile
file cannot make it decode billions of codes).

Blocks
------
:meth:`EntropyModel.encode` codes ``(n_q, k)`` codes (a block of k frames) with one ``RangeEncoder``: stage 0's k
codes, then stage 1's, ... each with the distribution of its context (for stage s, the class of the same frame's
stage s-1 code, which the decoder has already decoded). Within a stage the codes go context class by class, in
ascending order, frames in order within a class, so each class's codes are one call with one model (six times
faster than a model per code). The result is a whole number of 32-bit words; :meth:`EntropyModel.decode` inverts
it. Blocks are independent: :mod:`telucodec.coding.bitstream` (format version 2)
stores one per ``block_frames`` frames, so a cut file keeps the whole blocks that arrived.

Identity and shipping
---------------------
:attr:`EntropyModel.id` is the first 8 bytes of the SHA-256 of the tables (``b"telucodec-entropy-1\\0"``, K as u32
little-endian, then for each ``n_q`` in ascending order: ``n_q`` as u8, M as u16, ``classes`` as uint8 bytes,
``freqs`` as int16 little-endian bytes). A v2 ``.tlc`` names it in its header, and a decoder with another model
refuses the file. In a ``.safetensors`` file the tables are the tensors ``entropy.nq<n_q>.classes`` (uint8,
``(n_q, K)``) and ``entropy.nq<n_q>.freqs`` (int16, ``(n_q, M, K)``), beside the metadata key ``entropy_model``
(JSON: id, contexts, n_q, the fit report). ``python -m telucodec fit-entropy`` fits and writes them.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct

import numpy as np

from telucodec.errors import TeluCodecError

__all__ = ["EntropyModel", "coder_rows", "META_KEY", "TENSOR_PREFIX"]

PRECISION = 24  # constriction's default categorical models: probabilities in units of 2**-24
ROW_TOTAL = 1 << 16  # a stored row sums to this
MAX_FREQ = (1 << 15) - 1  # ... and no entry exceeds it: every probability is below 1/2
ID_BYTES = 8
META_KEY = "entropy_model"
TENSOR_PREFIX = "entropy."
_KEY = re.compile(r"^entropy\.nq(\d+)\.(classes|freqs)$")


def _constriction():
    try:
        import constriction
    except ImportError:
        raise TeluCodecError("entropy coding needs the constriction package (pip install constriction)") from None
    return constriction


def coder_rows(freqs: np.ndarray, codebook_size: int) -> np.ndarray:
    """Stored rows (..., K) summing to 2**16 -> the integer frequencies (as exact float64) that constriction gets:
    they sum to 2**24 - K, and constriction adds 1 to each (module docstring)."""
    f = freqs.astype(np.int64)
    free = (1 << PRECISION) - codebook_size
    f24 = f * free // ROW_TOTAL
    rem = free - f24.sum(-1, keepdims=True)  # 0 <= rem < K: each floor lost less than 1
    f24 += np.arange(codebook_size) < rem
    return f24.astype(np.float64)


class EntropyModel:
    """Static priors for the codes of one codec (module docstring). ``tables``: ``{n_q: (classes, freqs)}`` with
    classes ``(n_q, K)`` integers < M (row 0 all zero) and freqs ``(n_q, M, K)`` integers in 1..32767 summing to
    2**16 along the last axis. Raises ValueError when they are not."""

    def __init__(self, tables: dict, report: dict | None = None):
        if not tables:
            raise ValueError("an entropy model needs tables for at least one stage count")
        checked, sizes = {}, set()
        for n_q, (classes, freqs) in sorted(tables.items()):
            classes, freqs = np.asarray(classes), np.asarray(freqs)
            n_q = int(n_q)
            if freqs.ndim != 3 or classes.ndim != 2 or freqs.shape[0] != n_q or classes.shape != (n_q, freqs.shape[2]):
                raise ValueError(f"n_q={n_q}: tables of shapes {classes.shape} and {freqs.shape} do not fit")
            if not (np.issubdtype(classes.dtype, np.integer) and np.issubdtype(freqs.dtype, np.integer)):
                raise ValueError(f"n_q={n_q}: the tables must be integers")
            m, k = freqs.shape[1:]
            if not 1 <= n_q <= 32 or not 1 <= m <= 256 or not (4 <= k <= 1 << 16 and not k & (k - 1)):
                raise ValueError(f"n_q={n_q}: {m} contexts of {k} codes is out of range")
            if classes.min() < 0 or classes.max() >= m or classes[0].any():
                raise ValueError(f"n_q={n_q}: context classes out of range")
            if freqs.min() < 1 or freqs.max() > MAX_FREQ or (freqs.astype(np.int64).sum(-1) != ROW_TOTAL).any():
                raise ValueError(f"n_q={n_q}: frequencies must be 1..{MAX_FREQ} and sum to {ROW_TOTAL} per row")
            sizes.add(k)
            checked[n_q] = (classes.astype(np.uint8), freqs.astype(np.int16))
        if len(sizes) != 1:
            raise ValueError(f"the tables disagree on the codebook size: {sorted(sizes)}")
        self.codebook_size = sizes.pop()
        self.tables = checked
        self.report = dict(report or {})
        h = hashlib.sha256(b"telucodec-entropy-1\0" + struct.pack("<I", self.codebook_size))
        for n_q, (classes, freqs) in checked.items():
            h.update(struct.pack("<BH", n_q, freqs.shape[1]))
            h.update(classes.tobytes())
            h.update(freqs.astype("<i2").tobytes())
        self.id: bytes = h.digest()[:ID_BYTES]
        self._rows = {n_q: coder_rows(f, self.codebook_size) for n_q, (_, f) in checked.items()}
        self._models: dict = {}

    # ------------------------------------------------------------------------------------------ description
    @property
    def hex_id(self) -> str:
        return self.id.hex()

    @property
    def n_qs(self) -> tuple:
        return tuple(self.tables)

    @property
    def contexts(self) -> int:
        return max(f.shape[1] for _, f in self.tables.values())

    def covers(self, n_q: int) -> bool:
        return int(n_q) in self.tables

    def __repr__(self) -> str:
        return (
            f"EntropyModel(id={self.hex_id}, codebook_size={self.codebook_size}, n_q={list(self.n_qs)}, "
            f"contexts={self.contexts})"
        )

    def probabilities(self, n_q: int) -> np.ndarray:
        """(n_q, M, K) float64: the exact probabilities the coder uses, ``(f24 + 1) / 2**24``."""
        return (self._rows[n_q] + 1.0) / (1 << PRECISION)

    def bits(self, codes) -> float:
        """Information content of ``(n_q, k)`` codes under the model, in bits (what an ideal coder would spend)."""
        return float(self.bits_per_stage(codes).sum())

    def bits_per_stage(self, codes) -> np.ndarray:
        """:meth:`bits`, stage by stage: ``(n_q,)`` float64."""
        codes = self._check(codes)
        n_q = codes.shape[0]
        classes, _ = self.tables[n_q]
        p = self.probabilities(n_q)
        out = np.zeros(n_q)
        for s in range(n_q):
            ctx = classes[s][codes[s - 1]] if s else np.zeros(codes.shape[1], np.int64)
            out[s] = -np.log2(p[s, ctx, codes[s]]).sum()
        return out

    # --------------------------------------------------------------------------------------------- coding
    def _check(self, codes) -> np.ndarray:
        codes = np.asarray(codes)
        if codes.ndim != 2 or not self.covers(codes.shape[0]):
            raise ValueError(
                f"this entropy model codes (n_q, frames) codes with n_q in {list(self.n_qs)}, got shape {codes.shape}"
            )
        if codes.size and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size})")
        return codes.astype(np.int64, copy=False)

    def _model(self, n_q: int, s: int, m: int):
        key = (n_q, s, m)
        model = self._models.get(key)
        if model is None:
            cs = _constriction()
            model = self._models[key] = cs.stream.model.Categorical(self._rows[n_q][s, m], perfect=False)
        return model

    def _contexts(self, n_q: int, s: int, previous: np.ndarray | None, k: int) -> np.ndarray:
        """The context class of each of the k frames' stage-s code (stage 0: all 0)."""
        if s == 0 or previous is None:
            return np.zeros(k, np.int64)
        return self.tables[n_q][0][s][previous].astype(np.int64)

    def encode(self, codes) -> np.ndarray:
        """``(n_q, k)`` codes -> the block's compressed uint32 words (empty for k = 0). Order: stage by stage;
        within a stage, context class by class (ascending), frames in order within a class."""
        codes = self._check(codes)
        n_q, k = codes.shape
        if k == 0:
            return np.zeros(0, np.uint32)
        enc = _constriction().stream.queue.RangeEncoder()
        for s in range(n_q):
            ctx = self._contexts(n_q, s, codes[s - 1] if s else None, k)
            for m in np.unique(ctx):
                enc.encode(codes[s][ctx == m].astype(np.int32), self._model(n_q, s, int(m)))
        return np.asarray(enc.get_compressed(), dtype=np.uint32)

    def decode(self, words, n_q: int, frames: int) -> np.ndarray:
        """The inverse of :meth:`encode`: ``(n_q, frames)`` int64 codes. ValueError when the words are not valid
        data for this model (what comes out of other words is not checked here: re-encode to compare)."""
        if not self.covers(n_q):
            raise ValueError(f"this entropy model has no tables for n_q={n_q} (it has {list(self.n_qs)})")
        out = np.zeros((n_q, frames), np.int64)
        if frames == 0:
            return out
        cs = _constriction()
        try:
            dec = cs.stream.queue.RangeDecoder(np.ascontiguousarray(words, dtype=np.uint32))
            for s in range(n_q):
                ctx = self._contexts(n_q, s, out[s - 1] if s else None, frames)
                for m in np.unique(ctx):
                    where = ctx == m
                    out[s][where] = dec.decode(self._model(n_q, s, int(m)), int(where.sum()))
        except Exception as e:  # constriction reports invalid data as AssertionError
            raise ValueError(f"not valid entropy-coded data ({' '.join(str(e).split())[:80]})") from None
        return out

    # ------------------------------------------------------------------------------------------- shipping
    def tensors(self) -> dict:
        """``{name: torch.Tensor}`` to store beside the weights (module docstring)."""
        import torch

        out = {}
        for n_q, (classes, freqs) in self.tables.items():
            out[f"{TENSOR_PREFIX}nq{n_q}.classes"] = torch.from_numpy(classes.copy())
            out[f"{TENSOR_PREFIX}nq{n_q}.freqs"] = torch.from_numpy(freqs.copy())
        return out

    def metadata(self) -> str:
        return json.dumps(
            {
                "id": self.hex_id,
                "codebook_size": self.codebook_size,
                "n_q": list(self.n_qs),
                "contexts": self.contexts,
                "fit": self.report,
            }
        )

    @classmethod
    def from_tensors(cls, tensors: dict, metadata: str | dict | None = None) -> EntropyModel | None:
        """The model stored in ``tensors`` (the ``entropy.*`` entries; others are ignored), or None if there are
        none. `metadata`: the ``entropy_model`` JSON, or a file's whole metadata dict (so that
        ``from_tensors(*load_weights_safetensors(path))`` works). ValueError when they are damaged or disagree
        with the metadata's id."""
        if isinstance(metadata, dict):
            metadata = metadata.get(META_KEY)
        parts: dict = {}
        for name, t in tensors.items():
            if not name.startswith(TENSOR_PREFIX):
                continue
            match = _KEY.match(name)
            if match is None:
                raise ValueError(f"unexpected tensor {name}")
            parts.setdefault(int(match.group(1)), {})[match.group(2)] = t.detach().cpu().numpy()
        if not parts:
            return None
        if any(set(p) != {"classes", "freqs"} for p in parts.values()):
            raise ValueError("each stage count needs both a classes and a freqs tensor")
        report = {}
        if metadata:
            try:
                meta = json.loads(metadata)
                report = meta.get("fit", {})
                stated = meta.get("id")
            except (ValueError, AttributeError):
                raise ValueError("its metadata is not valid JSON") from None
        else:
            stated = None
        model = cls({n: (p["classes"], p["freqs"]) for n, p in parts.items()}, report)
        if stated is not None and stated != model.hex_id:
            raise ValueError(f"the tables' id {model.hex_id} is not the stated {stated}")
        return model
