"""The training objective, with the story's broken and fixed forms side by side.

Four of the seven fixes live here: unclamped losses (fix 5), the float32 perceptual loss (fix 6) and the
reweighted total (fix 7); the VQ-loss reduction (fix 4) is computed in the quantizer and arrives as `vq_loss`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from telucodec.codec.spectral import log_mel_loss
from telucodec.fixes import Fixes

CLAMPS = {"recon": (0.0, 5.0), "perceptual": (0.0, 10.0), "vq": (0.0, 10.0)}  # the baseline's bounds
WEIGHTS_BROKEN = {"recon": 1.0, "perceptual": 0.01, "vq": 1.0}
WEIGHTS_FIXED = {"recon": 2.0, "perceptual": 0.1, "vq": 1.0}  # fix 7


def reconstruction_loss(est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """L1 + MSE on the waveform."""
    return F.l1_loss(est, ref) + F.mse_loss(est, ref)


def perceptual_loss(est: torch.Tensor, ref: torch.Tensor, sample_rate: int, fixes: Fixes) -> torch.Tensor:
    """Multi-resolution log-mel L1. Fix 6 decides the precision it is computed and returned in."""
    if fixes.fp32_perceptual:  # fix 6: an fp32 island outside autocast
        with torch.autocast(device_type=est.device.type, enabled=False):
            return log_mel_loss(est.float(), ref.float(), sample_rate)
    loss = log_mel_loss(est, ref, sample_rate)  # baseline: under autocast...
    if torch.is_autocast_enabled(est.device.type):
        loss = loss.to(torch.get_autocast_dtype(est.device.type))  # ...and cast back to its dtype
    return loss


def total_loss(est: torch.Tensor, ref: torch.Tensor, vq_loss: torch.Tensor, sample_rate: int, fixes: Fixes) -> dict:
    """Combine reconstruction, perceptual and VQ losses as the fixes say. Returns the total and its parts."""
    parts = {
        "recon": reconstruction_loss(est.float(), ref.float()),
        "perceptual": perceptual_loss(est, ref, sample_rate, fixes),
        "vq": vq_loss,
    }
    used = parts
    if not fixes.unclamped_losses:  # baseline: clamp each loss (fix 5 removes it)
        used = {k: v.clamp(*CLAMPS[k]) for k, v in parts.items()}
    weights = WEIGHTS_FIXED if fixes.reweighted_losses else WEIGHTS_BROKEN
    total = sum(weights[k] * v.float() for k, v in used.items())
    # report the unclamped values, so a clamp that silently zeroes a gradient shows up in the logs
    return {
        "total": total,
        **{k: v.detach().float() for k, v in parts.items()},
        "clamped": [k for k in parts if not fixes.unclamped_losses and float(parts[k].detach()) > CLAMPS[k][1]],
    }


# ------------------------------------------------------------------------------------------- the working loss
# Not part of the story: the loss of the working recipe (telucodec.training.recipes). Three terms that see different
# things, plus the VQ loss as the fixes define it:
#   waveform  L1 between the waveforms: the only term that cares about phase, so the output stays the input;
#   stft      multi-resolution STFT, L1 of log10 magnitude + L1 of linear magnitude (DAC's MultiScaleSTFTLoss,
#             auraloss's log/linear STFT terms), windows from 2048 down to 64 samples;
#   mel       L1 of log10 magnitude mel spectrograms with short and long windows (DAC's mel loss).
# It is always computed in float32 and never clamped (fixes 5-7 are about the story's loss and do not apply).
STFT_SCALES = (2048, 1024, 512, 256, 128, 64)
MEL_SCALES = ((2048, 128), (1024, 80), (512, 64), (256, 40), (128, 20))
WORKING_SHARES = {"waveform": 0.15, "stft": 0.425, "mel": 0.425}  # shares of the gradient at the output
WORKING_WEIGHTS = {"waveform": 1.0, "stft": 1.0, "mel": 1.0}  # plain weights when the balancer is off


def stft_loss(est: torch.Tensor, ref: torch.Tensor, scales=STFT_SCALES, floor_db: float | None = None) -> torch.Tensor:
    """Multi-resolution STFT loss: mean over window sizes of L1(log10 |X|) + L1(|X|), hop = window / 4.
    The log magnitudes are floored at 1e-5, or, with `floor_db`, `floor_db` under each example's loudest bin
    (telucodec.codec.spectral.log10_floored)."""
    from telucodec.codec.spectral import _window, log10_floored

    est, ref = est.reshape(-1, est.shape[-1]).float(), ref.reshape(-1, ref.shape[-1]).float()
    total = 0.0
    for n_fft in scales:
        window = _window(n_fft, str(est.device))  # the cached window the mel code uses
        m_est = torch.stft(est, n_fft, n_fft // 4, window=window, return_complex=True).abs()
        m_ref = torch.stft(ref, n_fft, n_fft // 4, window=window, return_complex=True).abs()
        log_est, log_ref = log10_floored(m_est, m_ref, floor_db)
        total = total + (log_est - log_ref).abs().mean() + (m_est - m_ref).abs().mean()
    return total / len(scales)


def mel_loss(
    est: torch.Tensor, ref: torch.Tensor, sample_rate: int, scales=MEL_SCALES, floor_db: float | None = None
) -> torch.Tensor:
    """L1 between log10 magnitude mel spectrograms (floored at 1e-5, or `floor_db` under each example's
    loudest bin), mean over (n_fft, n_mels) scales."""
    from telucodec.codec.spectral import log10_mel_l1

    return log10_mel_l1(est, ref, sample_rate, scales, floor_db)


def pre_emphasise(wav: torch.Tensor, coefficient: float) -> torch.Tensor:
    """y[n] = x[n] - coefficient * x[n-1] (x[-1] = 0): the first-order high-pass of speech coding. With 0.9 it
    lifts 4 kHz by about 20 dB against 100 Hz, so an error above 1 kHz weighs as much as one in the loud low band."""
    return torch.cat([wav[..., :1], wav[..., 1:] - coefficient * wav[..., :-1]], dim=-1)


def low_pass(wav: torch.Tensor, cutoff_hz: float, sample_rate: int, transition_hz: float = 250.0) -> torch.Tensor:
    """`wav` with everything above `cutoff_hz` removed (an FFT mask over the whole crop, a raised-cosine
    transition `transition_hz` wide ending at the cutoff); differentiable."""
    n = wav.shape[-1]
    freqs = torch.fft.rfftfreq(n, 1 / sample_rate, device=wav.device)
    t = ((cutoff_hz - freqs) / transition_hz).clamp(0, 1)
    mask = 0.5 - 0.5 * torch.cos(torch.pi * t)
    return torch.fft.irfft(torch.fft.rfft(wav, dim=-1) * mask, n=n, dim=-1)


def working_terms(
    est: torch.Tensor,
    ref: torch.Tensor,
    sample_rate: int,
    floor_db: float | None = None,
    pre_emphasis: float | None = None,
    waveform_lowpass_hz: float | None = None,
) -> dict:
    """The three reconstruction terms of the working loss, in float32 outside autocast. `floor_db` (the
    `relative_floor` ingredient) floors the log spectra relative to each example's loudest bin; `pre_emphasis`
    (the `pre_emphasis` ingredient) compares both signals after `pre_emphasise`, in every term;
    `waveform_lowpass_hz` (the `low_band_waveform` ingredient) compares waveforms under that frequency only,
    leaving the band above it to the spectral terms."""
    with torch.autocast(device_type=est.device.type, enabled=False):
        est, ref = est.float(), ref.float()
        if pre_emphasis:
            est, ref = pre_emphasise(est, pre_emphasis), pre_emphasise(ref, pre_emphasis)
        wav_est, wav_ref = (
            (low_pass(est, waveform_lowpass_hz, sample_rate), low_pass(ref, waveform_lowpass_hz, sample_rate))
            if waveform_lowpass_hz
            else (est, ref)
        )
        return {
            "waveform": F.l1_loss(wav_est, wav_ref),
            "stft": stft_loss(est, ref, floor_db=floor_db),
            "mel": mel_loss(est, ref, sample_rate, floor_db=floor_db),
        }


def working_loss(
    est: torch.Tensor,
    ref: torch.Tensor,
    vq_loss: torch.Tensor,
    sample_rate: int,
    weights: dict = WORKING_WEIGHTS,
    floor_db: float | None = None,
    pre_emphasis: float | None = None,
    waveform_lowpass_hz: float | None = None,
) -> dict:
    """Total = sum of weighted terms + VQ loss (used as is when the balancer is off; with the balancer the
    training step backpropagates the terms through `Balancer.backward` instead and ignores "total")."""
    terms = working_terms(est, ref, sample_rate, floor_db, pre_emphasis, waveform_lowpass_hz)
    total = sum(weights[k] * v for k, v in terms.items()) + vq_loss.float()
    return {
        "total": total,
        "terms": terms,
        "vq": vq_loss.detach().float(),
        "recon": reconstruction_loss(est.detach().float(), ref.float()),
        "perceptual": terms["mel"].detach(),
        **{k: v.detach() for k, v in terms.items()},
        "clamped": [],
    }


def balancer_shares(train_config) -> dict:
    """The balancer's share of the output gradient for each term of a run: waveform `waveform_share`, STFT and
    mel the rest equally; with discriminators, the adversarial and feature-matching terms take theirs
    (`adversarial_weight`, `feature_weight`) and the reconstruction terms split what is left in that ratio."""
    t = train_config
    rest = (1 - t.waveform_share) / 2
    shares = {"waveform": t.waveform_share, "stft": rest, "mel": rest}
    if t.discriminators:
        recon = 1 - t.adversarial_weight - t.feature_weight
        shares = {
            **{k: v * recon for k, v in shares.items()},
            "adversarial": t.adversarial_weight,
            "feature": t.feature_weight,
        }
    return shares


class Balancer:
    """EnCodec-style loss balancer: each term gets a fixed *share* of the gradient at the decoder output,
    whatever its raw scale. For each term k, g_k = dL_k/dy is measured by autograd; the output receives
    sum_k share_k * g_k / <||g_k||>, where <||g_k||> is a bias-corrected moving average (decay `beta`) of the
    per-example gradient norm. The VQ loss is not balanced: its gradient reaches the encoder as it is.
    The balanced gradient is rescaled to `total_norm` per example (EnCodec), or by default to the sum of the
    terms' average norms. The state (moving averages) is saved in checkpoints so that training resumes exactly."""

    def __init__(
        self, shares: dict = WORKING_SHARES, beta: float = 0.999, eps: float = 1e-12, total_norm: float | None = None
    ):
        total = sum(shares.values())
        self.shares = {k: v / total for k, v in shares.items()}
        self.beta, self.eps, self.total_norm = beta, eps, total_norm
        self.averages = {k: 0.0 for k in shares}
        self.counts = {k: 0 for k in shares}

    def output_gradient(self, terms: dict, output: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The balanced gradient for `output` and the measured per-term gradient norms (before balancing, as
        0-d tensors on the output's device: nothing here waits for the device).
        A term absent from `terms` (an adversarial term before its start step) is left out and the others'
        shares are renormalised; each term's moving average counts only the steps it was present."""
        present = [k for k in self.shares if k in terms]
        shares = self.shares
        if len(present) < len(self.shares):
            total_share = sum(self.shares[k] for k in present)
            shares = {k: self.shares[k] / total_share for k in present}
        grads = {k: torch.autograd.grad(terms[k], output, retain_graph=True)[0] for k in present}
        norms, averages, combined = {}, {}, torch.zeros_like(output)
        for k, g in grads.items():
            # a float64 tensor on the output's device, not a Python float: no device sync per term per step, and
            # the same double-precision arithmetic as Python floats, so runs are unchanged to the last bit
            norm = g.detach().reshape(g.shape[0], -1).norm(dim=1).mean().double()
            norms[k] = norm
            self.counts[k] += 1
            self.averages[k] = self.beta * self.averages[k] + (1 - self.beta) * norm
            averages[k] = self.averages[k] / (1 - self.beta ** self.counts[k])
            combined = combined + shares[k] * g / (averages[k] + self.eps)
        # EnCodec rescales to a fixed total norm (1 per example); by default we rescale to the sum of the terms'
        # own gradient norms, so the balanced gradient is as large as the unweighted sum's and the VQ loss,
        # which is not balanced, keeps its usual weight against reconstruction.
        total = self.total_norm if self.total_norm is not None else sum(averages.values())
        return combined * total, norms

    def backward(
        self,
        terms: dict,
        output: torch.Tensor,
        vq_loss: torch.Tensor,
        scale: float = 1.0,
        extra: torch.Tensor | None = None,
    ) -> dict:
        """Backpropagate the balanced output gradient and the VQ loss in one pass (scaled for fp16 AMP), with
        `extra` (a loss that does not act through `output`, such as the envelope post-filter's) as it is."""
        g, norms = self.output_gradient(terms, output)
        tensors, grads = [output], [g * scale]
        for loss in (vq_loss, extra):
            if loss is not None and loss.requires_grad:
                tensors.append(loss.float())
                grads.append(torch.full_like(tensors[-1], scale))
        torch.autograd.backward(tensors, grads)
        return norms

    def state_dict(self) -> dict:
        return {
            "shares": dict(self.shares),
            "averages": {k: float(v) for k, v in self.averages.items()},  # read once per checkpoint
            "counts": dict(self.counts),
            "beta": self.beta,
        }

    def load_state_dict(self, state: dict):
        self.shares, self.averages = dict(state["shares"]), dict(state["averages"])
        if "counts" in state:
            self.counts = {k: int(v) for k, v in state["counts"].items()}
        else:  # checkpoints before per-term counts: one shared count
            self.counts = {k: int(state["count"]) for k in self.shares}
        self.beta = float(state["beta"])
