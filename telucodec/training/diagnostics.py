"""Does it learn at all? Four probes for a codec that fails quietly, each a function the book and the tests call.

* `overfit_one_clip`   - can the network fit one clip, with the quantizer bypassed? If not, nothing else matters.
* `rvq_residual_norms` - does each quantizer stage shrink what the stages before it left over?
* `gradient_shares`    - which loss term owns the gradient at the decoder output and at the latent?
* `codebook_health`    - usage, perplexity and dead codes per stage, for a batch of codes.
* `gradient_in_silence` - how much of each loss term's gradient at the output lands where the input is silent?
* `where_quality_is_lost` - is a trained codec limited by its bits (the quantizer) or by its autoencoder?
* `delay_uncertainty`  - what does each working-loss term prefer when the output's timing is uncertain: one sharp
  plausible version, or the blurred average of all of them?
"""

from __future__ import annotations

import numpy as np
import torch

from telucodec.codec.model import Codec
from telucodec.config import CodecConfig
from telucodec.fixes import Fixes


def overfit_one_clip(
    clip: np.ndarray,
    codec_config: CodecConfig,
    steps: int = 300,
    lr: float = 3e-3,
    bypass_quantizer: bool = True,
    fixes: Fixes = Fixes.all(),
    seed: int = 0,
    loss: str = "working",
    eval_every: int = 50,
) -> dict:
    """Train a fresh codec on one clip only (full-clip batches) and return SI-SNR (dB) against steps. With
    `bypass_quantizer` the decoder sees the continuous latent: a plain autoencoder, the upper bound.
    `loss` is "working" (balanced, as the working recipe trains) or "story" (the story's loss under `fixes`)."""
    from telucodec.evaluation.metrics import si_snr
    from telucodec.training.losses import Balancer, total_loss, working_loss

    balancer = Balancer() if loss == "working" else None
    torch.manual_seed(seed)
    model = Codec(codec_config, fixes)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.8, 0.99))
    x = torch.from_numpy(np.asarray(clip, np.float32))[None, None]
    curve = []
    for step in range(1, steps + 1):
        model.train()
        out = model(x, n_q=codec_config.n_q, bypass_quantizer=bypass_quantizer)
        opt.zero_grad(set_to_none=True)
        if loss == "working":  # the working loss, balanced as in training
            losses = working_loss(out["wav"], x, out["vq_loss"], codec_config.sample_rate)
            balancer.backward(losses["terms"], out["wav"], out["vq_loss"])
        else:  # the story's loss under `fixes`
            losses = total_loss(out["wav"], x, out["vq_loss"], codec_config.sample_rate, fixes)
            losses["total"].backward()
        total = losses["total"]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % eval_every == 0 or step == steps:
            model.eval()
            with torch.no_grad():
                y = model(x, n_q=codec_config.n_q, bypass_quantizer=bypass_quantizer)["wav"]
            curve.append({"step": step, "si_snr_db": si_snr(x[0, 0], y[0, 0]), "loss": float(total.detach())})
    return {
        "model": model,
        "curve": curve,
        "si_snr_db": curve[-1]["si_snr_db"],
        "best_si_snr_db": max(c["si_snr_db"] for c in curve),
    }


@torch.no_grad()
def rvq_residual_norms(model: Codec, wav: torch.Tensor) -> list:
    """RMS of the residual before stage 0 (the latent itself) and after each stage, for waveforms (B, 1, T).
    A healthy quantizer makes this fall at every stage."""
    was_training = model.training
    model.eval()
    z = model.encoder(model._pad(wav)[0]).float().transpose(1, 2).reshape(-1, model.config.latent_dim)
    norms, residual = [float(z.pow(2).mean().sqrt())], z
    for stage in model.quantizer.stages:
        residual = residual - stage.lookup(stage.nearest(residual), learnable=False)
        norms.append(float(residual.pow(2).mean().sqrt()))
    model.train(was_training)
    return norms


def gradient_shares(model: Codec, wav: torch.Tensor, terms_fn, n_q: int | None = None) -> dict:
    """Each loss term's gradient norm at the decoder output and at the latent z, and its share of the sum.
    `terms_fn(out, wav)` returns a dict {name: scalar loss} of already-weighted terms (e.g. the story's
    2.0 * recon, 0.1 * perceptual and the VQ loss). The model's parameters are not changed."""
    model.train()
    out = model(wav, n_q=n_q or model.config.n_q)
    terms = terms_fn(out, wav)
    result = {}
    for where, tensor in (("output", out["wav"]), ("latent", out["z"])):
        norms = {}
        for name, term in terms.items():
            if not term.requires_grad:
                norms[name] = 0.0
                continue
            g = torch.autograd.grad(term, tensor, retain_graph=True, allow_unused=True)[0]
            norms[name] = 0.0 if g is None else float(g.norm())
        total = sum(norms.values()) or 1.0
        result[where] = {name: {"norm": n, "share": n / total} for name, n in norms.items()}
    model.zero_grad(set_to_none=True)
    return result


def story_terms(fixes: Fixes, sample_rate: int = 16000):
    """terms_fn for `gradient_shares`: the story's weighted loss terms under `fixes` (clamps included)."""
    from telucodec.training.losses import CLAMPS, WEIGHTS_BROKEN, WEIGHTS_FIXED, perceptual_loss, reconstruction_loss

    weights = WEIGHTS_FIXED if fixes.reweighted_losses else WEIGHTS_BROKEN

    def terms(out, wav):
        parts = {
            "recon": reconstruction_loss(out["wav"].float(), wav.float()),
            "perceptual": perceptual_loss(out["wav"], wav, sample_rate, fixes),
            "vq": out["vq_loss"],
        }
        if not fixes.unclamped_losses:
            parts = {k: v.clamp(*CLAMPS[k]) for k, v in parts.items()}
        return {k: weights[k] * v.float() for k, v in parts.items()}

    return terms


def working_terms_fn(sample_rate: int = 16000, weights=None):
    """terms_fn for `gradient_shares`: the working loss's terms (plain weights) and the VQ loss."""
    from telucodec.training.losses import WORKING_WEIGHTS, working_terms

    weights = weights or WORKING_WEIGHTS

    def terms(out, wav):
        t = working_terms(out["wav"], wav, sample_rate)
        return {**{k: weights[k] * v for k, v in t.items()}, "vq": out["vq_loss"].float()}

    return terms


def adversarial_terms_fn(discriminators, sample_rate: int = 16000, loss: str = "hinge"):
    """terms_fn for `gradient_shares`: the working loss's terms, the VQ loss, and the adversarial and feature-
    matching terms that `discriminators` (a `telucodec.training.discriminators.Discriminators`) give the codec."""
    from telucodec.training.adversarial import feature_matching_loss, generator_loss

    base = working_terms_fn(sample_rate)

    def terms(out, wav):
        real_logits, real_features = discriminators(wav)
        fake_logits, fake_features = discriminators(out["wav"].float())
        return {
            **base(out, wav),
            "adversarial": generator_loss(fake_logits, loss),
            "feature": feature_matching_loss(real_features, fake_features),
        }

    return terms


def codebook_health(model: Codec, codes: torch.Tensor) -> list:
    """Per stage: fraction of codes used, perplexity of the code distribution, and codes the quantizer
    counts as dead right now. `codes` is (B, n_q, frames)."""
    from telucodec.codec.quantizer import codebook_usage

    usage = codebook_usage(codes, model.config.codebook_size)
    return [
        {"stage": i, "usage": u, "perplexity": p, "dead": int(model.quantizer.stages[i].dead_codes().sum())}
        for i, (u, p) in enumerate(zip(usage["usage"], usage["perplexity"]))
    ]


def gradient_in_silence(
    output: torch.Tensor, wav: torch.Tensor, terms: dict, quiet_db: float = 50.0, frame: int = 160
) -> dict:
    """For each loss term (a scalar computed from `output`), the fraction of its gradient's energy at `output`
    that lies in the frames of `wav` (frame: `frame` samples) quieter than `quiet_db` under the loudest frame.
    `output` must require grad; `wav` is (batch, 1, samples). A spectral term with an absolute log floor spends
    nearly all its gradient on a faint hiss where the input is nearly silent (chapter 14)."""
    x = wav.detach().reshape(wav.shape[0], -1)
    n = x.shape[-1] // frame * frame
    energy = 10 * torch.log10((x[:, :n].reshape(x.shape[0], -1, frame) ** 2).mean(-1) + 1e-20)
    quiet = (energy < energy.amax(dim=1, keepdim=True) - quiet_db).repeat_interleave(frame, dim=1)
    out = {}
    for k, v in terms.items():
        (g,) = torch.autograd.grad(v, output, retain_graph=True)
        g2 = g.reshape(g.shape[0], -1)[:, :n] ** 2
        out[k] = float(g2[quiet].sum() / g2.sum().clamp_min(1e-30))
    return out


@torch.no_grad()
def where_quality_is_lost(model: Codec, clips: list, n_qs=(3, 6, 12), perceptual: bool = True) -> dict:
    """Score a trained codec with its quantizer bypassed (the decoder gets the encoder's continuous latent: the
    best its autoencoder can do at any bitrate) and with `n_qs` quantizer stages, on the same clips (float32
    numpy waveforms at the codec's rate). Returns {"autoencoder": {metric: mean}, "<n>q": {...}}, each with
    "latent_snr_db" (latent power over quantization-error power; infinite for the bypass). If the bypassed
    scores are barely better than the quantized ones, more bits will not help: the encoder, decoder or loss do."""
    from telucodec.evaluation.scoring import mean_table, score

    was_training = model.training
    model.eval()
    sr = model.config.sample_rate
    rows = {"autoencoder": [], **{f"{n}q": [] for n in n_qs}}
    for clip in clips:
        x = torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32))[None, None]
        padded, length = model._pad(x)
        z = model.encoder(padded).float()
        ref = x[0, 0].numpy()
        y = model.decoder(z)[0, 0, :length].numpy()
        rows["autoencoder"].append({**score(ref, y, sr, perceptual), "latent_snr_db": float("inf")})
        for n in n_qs:
            q = model.quantizer.decode_codes(model.quantizer(z, n)["codes"])
            err = (z - q).pow(2).sum().clamp_min(1e-30)
            y = model.decoder(q)[0, 0, :length].numpy()
            rows[f"{n}q"].append(
                {**score(ref, y, sr, perceptual), "latent_snr_db": float(10 * torch.log10(z.pow(2).sum() / err))}
            )
    model.train(was_training)
    return {k: mean_table(v) for k, v in rows.items()}


def delay_uncertainty(x: np.ndarray, top_seconds: float, copies: int = 16, seed: int = 0, sample_rate: int = 16000):
    """`copies` plausible versions of `x`, each delayed by a uniform random time up to `top_seconds` (a pure phase
    shift, applied in the frequency domain), and their average. The working loss's three terms are averaged over the
    versions as references, once for one sharp version as the output and once for the average.
    Returns {"versions", "average", "sharp", "smooth"} (the last two: {term: expected loss})."""
    from telucodec.training.losses import working_terms

    delays = np.random.default_rng(seed).uniform(0.0, top_seconds, copies)
    freqs, spectrum = np.fft.rfftfreq(len(x), 1 / sample_rate), np.fft.rfft(x)
    versions = [np.fft.irfft(spectrum * np.exp(-2j * np.pi * freqs * d), len(x)).astype(np.float32) for d in delays]
    average = np.mean(versions, axis=0).astype(np.float32)
    t = lambda w: torch.from_numpy(np.asarray(w, np.float32))[None, None]

    def expected(candidate):
        parts = [working_terms(t(candidate), t(v), sample_rate) for v in versions]
        return {k: float(np.mean([float(p[k]) for p in parts])) for k in parts[0]}

    return {"versions": versions, "average": average, "sharp": expected(versions[0]), "smooth": expected(average)}
