"""CodeLM: a small causal transformer over a codec's codes, in either token order (:mod:`telucodec.tokens.orders`).

One embedding table per stage (K codes plus one padding / start index) is both the input embedding and, tied,
the output layer: the logits of stage ``s`` are the final hidden state times stage ``s``'s table. A delay-order
input step is the sum of its ``n_q`` codes' embeddings and predicts the next step's ``n_q`` codes at once; a flat
input position is one code and predicts the next code. Positions are learned, up to ``context_frames`` frames.

:meth:`CodeLM.code_logprobs` scores whole blocks in one pass (training, cross-entropy); :meth:`CodeLM.start` and
:meth:`CodeLM.advance` run it one position at a time with a key/value cache (entropy coding, sampling), which is
what :mod:`telucodec.tokens.lm_coding` uses on both sides of a file so that encoder and decoder compute the same
floats.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from telucodec.tokens.orders import ORDERS, delay, flatten, sequence_length

__all__ = ["LMConfig", "CodeLM"]


@dataclass(frozen=True)
class LMConfig:
    n_q: int = 12
    codebook_size: int = 1024
    order: str = "delay"
    context_frames: int = 64
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    ff_mult: int = 4

    def __post_init__(self):
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")

    @property
    def positions(self) -> int:
        return sequence_length(self.context_frames, self.n_q, self.order)

    def to_dict(self) -> dict:
        return asdict(self)


class _Block(nn.Module):
    """Pre-norm transformer block: causal self-attention, then a GELU MLP."""

    def __init__(self, d: int, heads: int, ff_mult: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, ff_mult * d), nn.GELU(), nn.Linear(ff_mult * d, d))

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if cache is None:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # one new position, attending to every cached one
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
            a = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class CodeLM(nn.Module):
    def __init__(self, config: LMConfig):
        super().__init__()
        c = self.config = config
        self.pad = c.codebook_size  # one index past the last code: padding in the delayed grid, and the start
        self.tables = nn.Embedding(c.n_q * (c.codebook_size + 1), c.d_model)
        self.pos = nn.Embedding(c.positions, c.d_model)
        self.blocks = nn.ModuleList(_Block(c.d_model, c.n_heads, c.ff_mult) for _ in range(c.n_layers))
        self.ln_f = nn.LayerNorm(c.d_model)
        self.out_bias = nn.Parameter(torch.zeros(c.n_q, c.codebook_size))
        nn.init.normal_(self.tables.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)
        for blk in self.blocks:  # GPT-2's scaled init of the residual projections
            for lin in (blk.proj, blk.mlp[2]):
                nn.init.normal_(lin.weight, std=0.02 / math.sqrt(2 * c.n_layers))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- pieces shared by the whole-block and the one-position paths --------------------------------------------
    def _ids(self, codes: torch.Tensor, stage: torch.Tensor) -> torch.Tensor:
        return codes + stage * (self.config.codebook_size + 1)

    def _stage_weights(self) -> torch.Tensor:
        c = self.config
        return self.tables.weight.view(c.n_q, c.codebook_size + 1, c.d_model)[:, : c.codebook_size]

    def _trunk(self, x: torch.Tensor, caches: list | None = None) -> torch.Tensor:
        for i, blk in enumerate(self.blocks):
            x = blk(x, None if caches is None else caches[i])
        return self.ln_f(x)

    # -- whole blocks -------------------------------------------------------------------------------------------
    def code_logprobs(self, codes: torch.Tensor) -> torch.Tensor:
        """``(B, n_q, F)`` codes (F <= context_frames) -> ``(B, n_q, F)``: the natural log of the probability the
        model gives each code, each predicted only from what comes before it in the token order."""
        c = self.config
        b, n_q, f = codes.shape
        if n_q != c.n_q or f > c.context_frames:
            raise ValueError(f"expected (B, {c.n_q}, <= {c.context_frames}) codes, got {tuple(codes.shape)}")
        stages = torch.arange(n_q, device=codes.device)
        w = self._stage_weights()
        if c.order == "delay":
            grid = delay(codes, self.pad)  # (B, n_q, S)
            inp = torch.cat([grid.new_full((b, n_q, 1), self.pad), grid[..., :-1]], -1)
            s = grid.shape[-1]
            x = self.tables(self._ids(inp, stages[:, None])).sum(1) + self.pos.weight[:s]
            h = self._trunk(x)  # (B, S, d)
            logits = torch.einsum("bsd,qkd->bqsk", h, w) + self.out_bias[None, :, None]
            lp = logits.log_softmax(-1).gather(-1, grid.clamp(max=c.codebook_size - 1)[..., None])[..., 0]
            return torch.stack([lp[:, k, k : k + f] for k in range(n_q)], 1)
        seq = flatten(codes)  # (B, F * n_q)
        stage_of = stages.repeat(f)
        ids = self._ids(seq, stage_of)
        start = ids.new_full((b, 1), int(self._ids(torch.tensor(self.pad), torch.tensor(n_q - 1))))
        x = self.tables(torch.cat([start, ids[:, :-1]], 1)) + self.pos.weight[: f * n_q]
        h = self._trunk(x).view(b, f, n_q, -1)
        logits = torch.einsum("bfqd,qkd->bfqk", h, w) + self.out_bias
        lp = logits.log_softmax(-1).gather(-1, seq.view(b, f, n_q, 1))[..., 0]
        return lp.transpose(1, 2)

    # -- one position at a time ---------------------------------------------------------------------------------
    def start(self) -> dict:
        """A fresh state for :meth:`advance`: no position read yet."""
        return {"t": 0, "caches": [{} for _ in self.blocks]}

    @torch.no_grad()
    def advance(self, state: dict, previous: torch.Tensor | None) -> torch.Tensor:
        """Read one more input position and return the log-probabilities of what comes next.

        delay: `previous` is the last step's ``(n_q,)`` codes (pad where the grid is empty; None at the start);
        returns ``(n_q, K)``, the next step's ``n_q`` codes. flat: `previous` is the last code (a 0-d tensor; None
        at the start); returns ``(1, K)``, the next code's stage being ``t % n_q``."""
        c = self.config
        t = state["t"]
        if t >= c.positions:
            raise ValueError(f"the model reads at most {c.positions} positions")
        if c.order == "delay":
            prev = torch.full((c.n_q,), self.pad) if previous is None else previous
            x = self.tables(self._ids(prev, torch.arange(c.n_q))).sum(0)
            stages = slice(None)
        else:
            prev = torch.tensor(self.pad) if previous is None else previous  # the start: stage n_q - 1's pad
            x = self.tables(self._ids(prev, torch.tensor((t - 1) % c.n_q)))
            stages = slice(t % c.n_q, t % c.n_q + 1)
        h = self._trunk((x + self.pos.weight[t])[None, None], state["caches"])[0, 0]
        state["t"] = t + 1
        logits = torch.einsum("d,qkd->qk", h, self._stage_weights()[stages]) + self.out_bias[stages]
        return logits.log_softmax(-1)
