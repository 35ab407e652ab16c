"""Residual vector quantization, with the story's broken and fixed forms side by side.

A `VectorQuantizer` holds one codebook. `ResidualVQ` chains n_q of them: stage i quantizes what the previous stages
left over. Three of the seven fixes live here: the codebook loss (fix 1), where the straight-through estimator sits
(fix 2) and how per-stage losses are combined (fix 4).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from telucodec.fixes import Fixes


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t


class VectorQuantizer(nn.Module):
    """One codebook of `size` vectors of dimension `dim`, updated by EMA and/or by gradients."""

    def __init__(
        self,
        dim: int,
        size: int,
        decay: float = 0.99,
        dead_code_threshold: float = 0.5,
        dead_code_relative: float = 0.0,
    ):
        super().__init__()
        self.dim, self.size, self.decay, self.dead_code_threshold = dim, size, decay, dead_code_threshold
        self.dead_code_relative = dead_code_relative
        self.codebook = nn.Parameter(torch.randn(size, dim) * 0.1)
        self.register_buffer("ema_count", torch.ones(size))
        self.register_buffer("ema_sum", self.codebook.data.clone())
        self.register_buffer("initialised", torch.tensor(False))

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the closest code for each row of x (N, dim)."""
        cb = self.codebook.detach().float()
        x = x.detach().float()
        dist2 = x.pow(2).sum(1, keepdim=True) - 2 * x @ cb.t() + cb.pow(2).sum(1)[None]
        return dist2.argmin(1)

    def lookup(self, codes: torch.Tensor, learnable: bool) -> torch.Tensor:
        """Code vectors for indices; gradients reach the codebook only when it is learnable (codebook loss on)."""
        weight = self.codebook if learnable else self.codebook.detach()
        return F.embedding(codes, weight)

    @torch.no_grad()
    def kmeans_init(self, x: torch.Tensor, iters: int = 10):
        """Seed the codebook with k-means centroids of x (N, dim), as SoundStream and EnCodec do."""
        x = x.detach().float()
        pick = torch.randint(0, x.shape[0], (self.size,), device=x.device)
        centroids = x[pick].clone()
        for _ in range(iters):
            assign = (x.pow(2).sum(1, keepdim=True) - 2 * x @ centroids.t() + centroids.pow(2).sum(1)[None]).argmin(1)
            counts = torch.bincount(assign, minlength=self.size).float()
            sums = torch.zeros_like(centroids).index_add_(0, assign, x)
            filled = counts > 0
            centroids[filled] = sums[filled] / counts[filled, None]
        self.codebook.data.copy_(centroids)
        self.ema_sum.copy_(centroids)
        self.ema_count.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def restart_ema(self):
        """Statistics that start from the codebook as it is (each code counted once, as after k-means): for a
        codebook loaded from an inference export, which leaves the training-only EMA statistics out."""
        self.ema_sum.copy_(self.codebook.data)
        self.ema_count.fill_(1.0)

    @torch.no_grad()
    def ema_update(self, x: torch.Tensor, codes: torch.Tensor):
        """Move each used code towards the mean of the vectors assigned to it (decay gamma); re-seed dead codes."""
        x = x.detach().float()
        counts = _all_reduce(torch.bincount(codes, minlength=self.size).float())
        sums = _all_reduce(torch.zeros(self.size, self.dim, device=x.device).index_add_(0, codes, x))
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + 1e-5) / (total + self.size * 1e-5) * total  # Laplace smoothing
        self.codebook.data.copy_(self.ema_sum / smoothed[:, None])
        self.reseed_dead_codes(x)

    def dead_codes(self) -> torch.Tensor:
        """Which codes count as dead: EMA usage (assignments per batch) below the absolute threshold (the story's
        codec), or below `dead_code_relative` x the mean usage per code (the working recipe: it does not depend
        on how many vectors a batch holds)."""
        if self.dead_code_relative > 0:
            return self.ema_count < self.dead_code_relative * self.ema_count.mean()
        return self.ema_count < self.dead_code_threshold

    @torch.no_grad()
    def reseed_dead_codes(self, x: torch.Tensor):
        """Replace codes whose EMA usage fell below the threshold by random vectors of the current batch."""
        dead = self.dead_codes()
        n_dead = int(dead.sum())
        if n_dead == 0 or x.shape[0] == 0:
            return 0
        pick = torch.randint(0, x.shape[0], (n_dead,), device=x.device)
        if dist.is_available() and dist.is_initialized():
            new = x[pick].clone()
            dist.broadcast(new, 0)  # every rank installs the same vectors
        else:
            new = x[pick]
        self.codebook.data[dead] = new
        self.ema_sum[dead] = new
        self.ema_count[dead] = 1.0
        return n_dead


def _stage_losses(residual, q, fixes: Fixes):
    """Commitment ||r - sg[q]||^2 (moves the encoder) and codebook ||sg[r] - q||^2 (moves the codebook)."""
    commitment = F.mse_loss(residual, q.detach())
    codebook = F.mse_loss(residual.detach(), q) if fixes.codebook_loss else residual.new_zeros(())
    return commitment, codebook


class ResidualVQ(nn.Module):
    """n_q VectorQuantizers in a chain, with the story's switches for STE placement and loss reduction."""

    def __init__(
        self,
        dim,
        n_q,
        codebook_size,
        fixes: Fixes,
        commitment_weight=0.25,
        decay=0.99,
        dead_code_threshold=0.5,
        kmeans_init=False,
        dead_code_relative=0.0,
    ):
        super().__init__()
        self.fixes, self.beta, self.n_q = fixes, commitment_weight, n_q
        self.use_kmeans_init = kmeans_init
        self.stages = nn.ModuleList(
            VectorQuantizer(dim, codebook_size, decay, dead_code_threshold, dead_code_relative) for _ in range(n_q)
        )

    @torch.no_grad()
    def kmeans_init_from(self, z: torch.Tensor):
        """Seed every stage by k-means on a buffer of latent vectors z (N, dim): stage i clusters what stages
        0..i-1 leave over, so each codebook starts where its residuals are. Needs N >= codebook size."""
        residual = z.detach().float()
        if residual.shape[0] < self.stages[0].size:
            raise ValueError(f"k-means needs at least {self.stages[0].size} vectors, got {residual.shape[0]}")
        for stage in self.stages:
            stage.kmeans_init(residual)
            residual = residual - stage.lookup(stage.nearest(residual), learnable=False)

    def forward(self, z: torch.Tensor, n_q: int | None = None) -> dict:
        """z: (B, dim, frames). Returns the quantized latent (with gradients routed by the STE), codes and losses."""
        fixes, n_q = self.fixes, n_q or self.n_q
        learnable = fixes.codebook_loss
        zf = z.transpose(1, 2).reshape(-1, z.shape[1])  # (B*frames, dim)
        residual, quantized_sum = zf, torch.zeros_like(zf)
        codes, commitments, codebook_losses = [], [], []
        for stage in self.stages[:n_q]:
            if self.training and self.use_kmeans_init and not bool(stage.initialised):
                stage.kmeans_init(residual)
            idx = stage.nearest(residual)
            q = stage.lookup(idx, learnable)
            commitment, codebook = _stage_losses(residual, q, fixes)
            commitments.append(commitment)
            codebook_losses.append(codebook)
            if self.training and fixes.ema_update:
                stage.ema_update(residual, idx)
            if fixes.per_step_ste:  # fix 2: STE inside each step
                q_ste = residual + (q - residual).detach()
                quantized_sum = quantized_sum + q_ste
                residual = {
                    "raw": residual - q,  # as proposed: encoder gradient x n_q
                    "detached": residual - q.detach(),  # vector-quantize-pytorch
                    "ste": residual - q_ste,
                }[fixes.residual_form]  # original EnCodec repo
            else:  # baseline: one STE after the loop
                quantized_sum = quantized_sum + q
                residual = residual - q
            codes.append(idx)
        if not fixes.per_step_ste:
            quantized_sum = zf + (quantized_sum - zf).detach()  # out = z + sg(sum q - z): gradient I to z

        commitment = torch.stack(commitments)
        codebook = torch.stack(codebook_losses)
        per_stage = self.beta * commitment + codebook
        vq_loss = per_stage.mean() if fixes.average_vq_loss else per_stage.sum()  # fix 4
        B, D, T = z.shape
        return {
            "quantized": quantized_sum.reshape(B, T, D).transpose(1, 2),
            "codes": torch.stack(codes).reshape(n_q, B, T).transpose(0, 1),  # (B, n_q, frames)
            "vq_loss": vq_loss,
            "commitment": commitment.detach(),
            "codebook_loss": codebook.detach(),
        }

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, n_q, frames) -> latent (B, dim, frames)."""
        B, n_q, T = codes.shape
        out = 0
        for i in range(n_q):
            out = out + self.stages[i].lookup(codes[:, i], learnable=False)  # (B, T, dim)
        return out.transpose(1, 2)


def codebook_usage(codes: torch.Tensor, codebook_size: int) -> dict:
    """Per-codebook fraction of codes used and perplexity (exp of the code-distribution entropy)."""
    codes = codes.detach().cpu()
    usage, perplexity = [], []
    for i in range(codes.shape[1]):
        counts = torch.bincount(codes[:, i].reshape(-1), minlength=codebook_size).double()
        p = counts / counts.sum()
        nz = p[p > 0]
        usage.append(float((counts > 0).sum()) / codebook_size)
        perplexity.append(float(torch.exp(-(nz * nz.log()).sum())))
    return {"usage": usage, "perplexity": perplexity}
