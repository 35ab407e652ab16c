"""The "does it learn at all?" probes: gradient shares, residual norms, codebook health, overfitting one clip.
Each asserts a measured behaviour that a broken codec (or a broken probe) would fail."""

import numpy as np
import pytest
import torch

from telucodec.bench import synthetic_speech
from telucodec.codec.model import Codec
from telucodec.config import preset
from telucodec.fixes import Fixes
from telucodec.training.diagnostics import (
    codebook_health,
    gradient_shares,
    overfit_one_clip,
    rvq_residual_norms,
    story_terms,
    working_terms_fn,
)


@pytest.fixture(scope="module")
def batch():
    torch.set_num_threads(1)
    return torch.from_numpy(np.stack([synthetic_speech(1.0, seed=s) for s in range(4)]))[:, None]


@pytest.mark.parametrize("seed", [0, 1])
def test_story_fixes_hand_the_output_gradient_to_the_log_mel_term(batch, seed):
    """Measured at initialisation: with all seven fixes the log-mel term's gradient at the decoder output is
    10-17x the waveform term's (the reweighting raises both), so little pulls the output towards the input's
    phase."""
    torch.manual_seed(seed)
    shares = gradient_shares(Codec(preset("ci").codec, Fixes.all()), batch, story_terms(Fixes.all()))
    out = shares["output"]
    assert out["perceptual"]["norm"] > 5 * out["recon"]["norm"]
    assert sum(v["share"] for v in out.values()) == pytest.approx(1.0)
    assert out["vq"]["norm"] == 0.0  # the VQ loss does not reach the output


@pytest.mark.parametrize("seed", [0, 1])
def test_story_baseline_hands_the_latent_gradient_to_the_summed_commitment_loss(batch, seed):
    """Measured at initialisation: in Fixes.none() the commitment loss, summed over 12 stages, sends the latent
    50-80x the reconstruction term's gradient."""
    torch.manual_seed(seed)
    latent = gradient_shares(Codec(preset("ci").codec, Fixes.none()), batch, story_terms(Fixes.none()))["latent"]
    assert latent["vq"]["norm"] > 20 * latent["recon"]["norm"]


def test_gradient_shares_leave_the_model_unchanged(batch):
    torch.manual_seed(0)
    model = Codec(preset("ci").codec, Fixes.all())
    before = {k: v.clone() for k, v in model.state_dict().items() if "ema" not in k and "codebook" not in k}
    gradient_shares(model, batch, working_terms_fn())
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert all(p.grad is None for p in model.parameters())


def test_codebook_health_counts_used_codes_and_dead_ones(batch):
    torch.manual_seed(0)
    model = Codec(preset("ci").codec, Fixes.all())
    codes = model.encode_tensor(batch)
    health = codebook_health(model, codes)
    assert len(health) == model.config.n_q
    assert all(0 < h["usage"] <= 1 and 1 <= h["perplexity"] <= model.config.codebook_size for h in health)
    # the story's absolute threshold (0.5 uses per batch) against fresh EMA counts of 1.0: nothing dead yet
    assert all(h["dead"] == 0 for h in health)
    model.quantizer.stages[0].ema_count[:10] = 0.0
    assert codebook_health(model, codes)[0]["dead"] == 10


def test_story_initialisation_leaves_the_residual_almost_untouched(batch):
    """codes start at randn * 0.1: twelve stages remove only a few per cent of the latent's RMS."""
    torch.manual_seed(0)
    norms = rvq_residual_norms(Codec(preset("ci").codec, Fixes.all()), batch)
    assert len(norms) == 13
    assert norms[-1] > 0.8 * norms[0]


def test_the_story_network_overfits_one_clip_once_the_quantizer_is_bypassed():
    """Step one of debugging a codec: can the encoder and decoder alone fit a single 1 s clip? Measured: the
    story's baseline network, as a plain autoencoder (lr 3e-3, 600 full-clip steps), climbs steadily to about
    21 dB SI-SNR on every CPU kernel set tried (AVX-512 21.8, AVX2 20.8, default 22.5), so its failure is not the
    convolution stack. (At lr 1e-2 the same run is chaotic: 7.5 to 14 dB depending on the kernels.)"""
    torch.set_num_threads(1)
    clip = synthetic_speech(1.0, seed=1)
    result = overfit_one_clip(
        clip,
        preset("ci").codec,
        steps=600,
        lr=3e-3,
        bypass_quantizer=True,
        fixes=Fixes.none(),
        loss="story",
        eval_every=100,
    )
    assert result["si_snr_db"] > 15.0
    assert result["curve"][0]["si_snr_db"] < result["si_snr_db"] - 10


def test_band_level_error_finds_a_muffled_band_and_a_gain():
    from scipy.signal import butter, sosfiltfilt

    from telucodec.bench import synthetic_speech
    from telucodec.evaluation.metrics import band_level_error

    x = synthetic_speech(2.0, seed=7).astype(np.float64)
    assert all(abs(v) < 1e-6 for v in band_level_error(x, x).values())
    assert all(abs(v + 6.02) < 0.01 for v in band_level_error(x, 0.5 * x).values())
    muffled = band_level_error(x, sosfiltfilt(butter(8, 1000, fs=16000, output="sos"), x))
    assert abs(muffled["0-0.5 kHz"]) < 0.5 and muffled["2-4 kHz"] < -30 and muffled["4-8 kHz"] < -30, muffled
    noisy = x.copy()
    noisy[len(x) // 2 :] *= 1e-4  # quiet second half...
    hiss = noisy + 1e-3 * np.random.default_rng(0).standard_normal(len(x))  # ...under a hiss
    assert abs(band_level_error(noisy, hiss)["0-0.5 kHz"]) < 1.0  # the loud frames decide, not the hiss


def test_band_level_by_loudness_tells_a_smeared_band_from_a_quiet_one():
    """A band turned down by 10 dB reads -10 dB in every loudness bin; a band replaced by a constant floor (what a
    codec that cannot follow the band's envelope outputs) reads far under 0 dB where the band is loud and over
    0 dB where it is quiet."""
    from scipy.signal import butter, sosfiltfilt

    from telucodec.bench import synthetic_speech
    from telucodec.evaluation.metrics import band_level_by_loudness

    x = synthetic_speech(3.0, seed=7).astype(np.float64)
    x[len(x) // 3 : 2 * len(x) // 3] *= 0.01  # a stretch 40 dB quieter
    band = sosfiltfilt(butter(6, (1000, 4000), btype="bandpass", fs=16000, output="sos"), x)
    rows = band_level_by_loudness(x, x)
    assert all(abs(r["level error (dB)"]) < 1e-6 for r in rows) and sum(r["frames"] for r in rows) > 300
    assert abs(sum(r["share of band energy"] for r in rows) - 1) < 1e-9
    quieter = band_level_by_loudness(x, x - band + 10 ** (-10 / 20) * band)
    assert all(abs(r["level error (dB)"] + 10) < 1.5 for r in quieter if r["share of band energy"] > 1e-3), quieter
    floor = np.random.default_rng(0).standard_normal(len(x)) * band.std()
    floor = sosfiltfilt(butter(6, (1000, 4000), btype="bandpass", fs=16000, output="sos"), floor)
    smeared = band_level_by_loudness(x, x - band + floor)
    assert smeared[0]["level error (dB)"] < -3 and smeared[-1]["level error (dB)"] > 10, smeared


def test_mel_distance_active_ignores_a_hiss_in_the_pauses():
    from telucodec.bench import synthetic_speech
    from telucodec.evaluation.metrics import mel_distance, mel_distance_active

    speech = synthetic_speech(1.0, seed=8)
    x = np.concatenate([speech, np.zeros(8000, np.float32)])  # speech, then a silent pause
    hiss = x + 1e-4 * np.random.default_rng(0).standard_normal(len(x)).astype(np.float32)
    assert mel_distance_active(x, x) == 0.0
    assert mel_distance(x, hiss) > 5 * mel_distance_active(x, hiss)  # the pause owns the plain mel distance
    assert mel_distance_active(x, 0.5 * x) > 0.25  # a 6 dB error in the speech still counts


def test_where_quality_is_lost_separates_the_autoencoder_from_the_quantizer(batch):
    """With k-means codebooks fitted on the clips' own latents, more stages leave a smaller quantization error
    (latent SNR rises with the number of stages), and the bypassed autoencoder decodes exactly decoder(encoder(x));
    a probe that quantized the bypass, or ignored n_q, fails one of these."""
    from telucodec.training.diagnostics import where_quality_is_lost

    torch.manual_seed(0)
    from dataclasses import replace

    model = Codec(replace(preset("ci").codec, codebook_size=64), Fixes.all())  # 200 latent frames: 64 centroids
    model.init_codebooks([batch])
    clips = [b[0].numpy() for b in batch[:2]]
    r = where_quality_is_lost(model, clips, n_qs=(1, 4, 12), perceptual=False)
    assert set(r) == {"autoencoder", "1q", "4q", "12q"}
    assert r["1q"]["latent_snr_db"] < r["4q"]["latent_snr_db"] < r["12q"]["latent_snr_db"]
    assert r["autoencoder"]["latent_snr_db"] == float("inf")
    from telucodec.evaluation.metrics import snr

    with torch.no_grad():
        direct = [model.decoder(model.encoder(model._pad(b[None])[0]))[0, 0, : b.shape[-1]].numpy() for b in batch[:2]]
    assert r["autoencoder"]["snr_db"] == pytest.approx(np.mean([snr(c, d) for c, d in zip(clips, direct)]), abs=1e-4)
    for n in (1, 12):  # the quantized rows decode what encode/decode at n stages give
        coded = [model.decode_tensor(model.encode_tensor(b[None], n), b.shape[-1])[0, 0].numpy() for b in batch[:2]]
        assert r[f"{n}q"]["snr_db"] == pytest.approx(np.mean([snr(c, d) for c, d in zip(clips, coded)]), abs=1e-4)


def test_delay_uncertainty_blurs_the_average_and_only_the_waveform_term_prefers_it():
    from telucodec.bench import synthetic_speech
    from telucodec.training.diagnostics import delay_uncertainty

    x = synthetic_speech(1.0, seed=3).astype(np.float32)
    probe = delay_uncertainty(x, 0.3e-3)
    assert len(probe["versions"]) == 16 and probe["average"].shape == x.shape
    assert np.allclose(probe["average"], np.mean(probe["versions"], axis=0))
    assert probe["smooth"]["waveform"] < probe["sharp"]["waveform"]
    assert probe["smooth"]["stft"] > probe["sharp"]["stft"] and probe["smooth"]["mel"] > probe["sharp"]["mel"]
    still = delay_uncertainty(x, 0.0)  # no uncertainty: every version is the clip, the average too
    assert np.allclose(still["average"], x, atol=1e-6) and still["smooth"]["waveform"] < 1e-6
