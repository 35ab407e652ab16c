"""Quality metrics. All take a reference and an estimate (numpy 1-D or torch tensors) and return a float."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from telucodec.codec.spectral import mel_distance as _mel_distance


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64).reshape(-1)


def _aligned(ref, est):
    ref, est = _np(ref), _np(est)
    n = min(len(ref), len(est))
    return ref[:n], est[:n]


def rms_dbfs(x) -> float:
    """The level of a signal in dB full scale: its RMS (in float64) in dB re 1.0, with a 1e-12 floor (-240 dB for
    silence). A full-scale sine is -3 dBFS."""
    return float(20 * np.log10(np.sqrt(np.mean(np.square(np.asarray(x), dtype=np.float64))) + 1e-12))


def snr(ref, est) -> float:
    """Signal-to-noise ratio in dB: 10 log10(sum ref^2 / sum (ref - est)^2). 0 dB for a silent output."""
    ref, est = _aligned(ref, est)
    noise = np.sum((ref - est) ** 2)
    return float(10 * np.log10(np.sum(ref**2) / max(noise, 1e-20) + 1e-20))


def si_snr(ref, est) -> float:
    """Scale-invariant SNR in dB (zero-mean, estimate projected on the reference): blind to the output level."""
    ref, est = _aligned(ref, est)
    ref, est = ref - ref.mean(), est - est.mean()
    target = (est @ ref) / max(ref @ ref, 1e-20) * ref
    noise = est - target
    return float(10 * np.log10(max(target @ target, 1e-20) / max(noise @ noise, 1e-20)))


def range_ratio(ref, est) -> float:
    """The story's diagnostic: output peak-to-peak divided by input peak-to-peak (1.0 = same range)."""
    ref, est = _aligned(ref, est)
    return float(np.ptp(est) / max(np.ptp(ref), 1e-12))


def mel_distance(ref, est, sample_rate: int = 16000) -> float:
    """Multi-resolution log10-mel L1 distance (lower is better; 0 for identical signals)."""
    ref, est = _aligned(ref, est)
    return float(_mel_distance(torch.from_numpy(est).float()[None], torch.from_numpy(ref).float()[None], sample_rate))


def loud_frames(level_db, top_db: float):
    """The frames that count as speech: those whose level (dB, one value per frame; numpy or torch) lies within
    `top_db` of the loudest frame. The one pause mask of the package: `mel_distance_active` (50 dB),
    `band_level_error` (20 dB) and the scripts that gate pauses all use it."""
    return level_db > level_db.max() - top_db


def mel_distance_active(ref, est, sample_rate: int = 16000, top_db: float = 50.0) -> float:
    """`mel_distance` on the frames where the reference is within `top_db` of its loudest frame only: the same
    log10-mel L1 at the same resolutions, with the nearly silent pauses left out. A hiss of the decoder in the
    pauses dominates `mel_distance` (its 1e-5 floor lets a silent reference and a faint hiss differ by decades);
    this ruler measures the speech. For identical signals 0."""
    from telucodec.codec.spectral import RESOLUTIONS, log10_floored, mel_spectrogram

    ref, est = _aligned(ref, est)
    r, e = torch.from_numpy(ref).float()[None], torch.from_numpy(est).float()[None]
    total = 0.0
    for n_fft, n_mels in RESOLUTIONS:
        m_ref = mel_spectrogram(r, n_fft, n_mels, sample_rate, power=1.0)[0]  # (frames, mels)
        m_est = mel_spectrogram(e, n_fft, n_mels, sample_rate, power=1.0)[0]
        energy = 10 * torch.log10((m_ref**2).sum(dim=1) + 1e-20)
        active = loud_frames(energy, top_db)
        log_est, log_ref = log10_floored(m_est, m_ref)  # mel_distance's floor
        total += float((log_est - log_ref).abs()[active].mean())
    return total / len(RESOLUTIONS)


def pesq_wb(ref, est, sample_rate: int = 16000) -> float:
    """Wideband PESQ (ITU-T P.862.2) MOS-LQO, 1.0-4.64, through the `pesq` package (16 kHz only).
    Returns NaN (with a warning) when PESQ cannot score the pair, e.g. no speech detected."""
    from pesq import pesq

    ref, est = _aligned(ref, est)
    if sample_rate != 16000:
        raise ValueError("pesq_wb needs 16 kHz audio")
    try:
        return float(pesq(16000, ref.astype(np.float32), est.astype(np.float32), "wb"))
    except Exception as exc:  # pesq raises NoUtterancesError etc. on silent input
        warnings.warn(f"PESQ could not score this pair: {exc}")
        return float("nan")


def stoi(ref, est, sample_rate: int = 16000) -> float:
    """Short-time objective intelligibility (0-1), through the `pystoi` package."""
    from pystoi import stoi as _stoi

    ref, est = _aligned(ref, est)
    return float(_stoi(ref, est, sample_rate, extended=False))


_VISQOL = {}


def visqol(ref, est, sample_rate: int = 16000) -> float:
    """ViSQOL v3 MOS-LQO (1-5) in speech mode, through `visqol-python` with its lattice mapper (offline, the
    model ships in the package). 16 kHz only. Returns NaN (with a warning) when it cannot score the pair."""
    import warnings as _w

    if sample_rate != 16000:
        raise ValueError("visqol needs 16 kHz audio (speech mode)")
    ref, est = _aligned(ref, est)
    try:
        if "api" not in _VISQOL:
            from visqol import VisqolApi

            api = VisqolApi()
            with _w.catch_warnings():
                _w.simplefilter("ignore")
                api.create(mode="speech", use_lattice_model=True)
            _VISQOL["api"] = api
        return float(_VISQOL["api"].measure_from_arrays(ref, est, 16000).moslqo)
    except ImportError:
        raise
    except Exception as exc:
        warnings.warn(f"ViSQOL could not score this pair: {exc}")
        return float("nan")


def robust_range_ratio(
    ref, est, sample_rate: int = 16000, percentile: float = 99.5, edge_seconds: float = 0.1
) -> float:
    """Range ratio that one sample cannot set: the spread between the (100 - p) and p percentiles of the
    estimate over that of the reference, with `edge_seconds` cut from both ends (where a decoder's edge transient
    lives, chapter 06). 1.0 = the same swing."""
    ref, est = _aligned(ref, est)
    cut = int(edge_seconds * sample_rate)
    if len(ref) > 4 * cut > 0:
        ref, est = ref[cut:-cut], est[cut:-cut]
    spread = lambda x: float(np.percentile(x, percentile) - np.percentile(x, 100 - percentile))
    return spread(est) / max(spread(ref), 1e-12)


def spectral_texture(
    ref,
    est,
    sample_rate: int = 16000,
    bands_hz=((0, 1000), (1000, 4000), (4000, 8000)),
    n_fft: int = 1024,
    n_mels: int = 64,
    floor_db: float = 50.0,
) -> dict:
    """How much spectral detail the estimate keeps, per frequency band, on the frames within `floor_db` of the
    reference's loudest: `time_detail` is the mean frame-to-frame change of the log-mel spectrogram (dB), estimate
    over reference (1 = as lively; below 1 = smoothed over time, the signature of a regression loss), and
    `level_db` the mean level difference (estimate minus reference, dB). `frequency_detail` is the same ratio for
    the change from one mel band to the next (harmonic structure), over all bands."""
    from telucodec.codec.spectral import _mel_basis, mel_spectrogram

    ref, est = _aligned(ref, est)
    mels = [
        10
        * torch.log10(
            mel_spectrogram(torch.from_numpy(x).float()[None], n_fft, n_mels, sample_rate)[0].T + 1e-10
        ).numpy()
        for x in (ref, est)
    ]  # (n_mels, frames), dB
    active = loud_frames(mels[0].max(0), floor_db)  # a frame's level: its loudest band
    a, b = mels[0][:, active], mels[1][:, active]
    centre_hz = _mel_basis(n_fft, n_mels, sample_rate, "cpu").argmax(dim=0).numpy() * sample_rate / n_fft
    dt = lambda m: np.abs(np.diff(m, axis=1)).mean(axis=1)
    out = {}
    for lo, hi in bands_hz:
        rows = (centre_hz >= lo) & (centre_hz < hi)
        out[f"{lo / 1000:g}-{hi / 1000:g} kHz"] = {
            "time_detail": float(dt(b)[rows].mean() / max(dt(a)[rows].mean(), 1e-12)),
            "level_db": float((b - a)[rows].mean()),
        }
    out["frequency_detail"] = float(np.abs(np.diff(b, axis=0)).mean() / max(np.abs(np.diff(a, axis=0)).mean(), 1e-12))
    return out


def _frame_power(x, n_fft: int) -> np.ndarray:
    """(frames, bins) power spectrum in float64: Hann window of `n_fft`, hop `n_fft` // 4, centred frames."""
    window = np.hanning(n_fft + 1)[:-1]
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x.astype(np.float64), n_fft // 2), n_fft)[:: n_fft // 4]
    return np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2


LEVEL_BANDS_HZ = ((0, 500), (500, 1000), (1000, 2000), (2000, 4000), (4000, 8000))


def band_level_error(
    ref, est, sample_rate: int = 16000, bands_hz=LEVEL_BANDS_HZ, top_db: float = 20.0, n_fft: int = 512
) -> dict:
    """Energy of the estimate over energy of the reference (dB) per frequency band, summed over the frames whose
    reference energy lies within `top_db` of the loudest frame: what the loud, audible part of the speech
    keeps in each band. 0 dB = the level is right; -15 dB = the band is muffled. Unlike `spectral_texture`'s
    `level_db` (a mean of dB differences, in which a hiss in quiet frames can cancel a deficit in loud ones),
    this is an energy ratio, so the loud frames decide it."""
    ref, est = _aligned(ref, est)
    p_ref, p_est = _frame_power(ref, n_fft), _frame_power(est, n_fft)
    energy = 10 * np.log10(p_ref.sum(1) + 1e-20)
    loud = loud_frames(energy, top_db)
    freqs = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    out = {}
    for lo, hi in bands_hz:
        cols = (freqs >= lo) & (freqs < hi)
        out[f"{lo / 1000:g}-{hi / 1000:g} kHz"] = float(
            10 * np.log10((p_est[loud][:, cols].sum() + 1e-20) / (p_ref[loud][:, cols].sum() + 1e-20))
        )
    return out


def band_level_by_loudness(
    ref, est, sample_rate: int = 16000, band_hz=(1000, 4000), bins_db=(0, -10, -20, -30, -40, -50), n_fft: int = 512
) -> list:
    """Does the estimate's level in one band follow the reference's? The frames are binned by the reference's
    energy in `band_hz` (dB under its loudest frame in that band: 0 to -10, -10 to -20, ..., and below the last
    edge); per bin, the estimate's band energy over the reference's (dB) and the bin's share of the reference's
    band energy. A codec whose band is right reads about 0 dB in every bin; one that smears the band into a
    constant floor reads well under 0 dB in the loud bins and over 0 dB in the quiet ones."""
    ref, est = _aligned(ref, est)
    freqs = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    cols = (freqs >= band_hz[0]) & (freqs < band_hz[1])
    e_ref, e_est = _frame_power(ref, n_fft)[:, cols].sum(1), _frame_power(est, n_fft)[:, cols].sum(1)
    level = 10 * np.log10(e_ref + 1e-20)
    level -= level.max()
    edges = list(bins_db) + [-np.inf]
    out = []
    for hi, lo in zip(edges[:-1], edges[1:]):
        sel = (level <= hi) & (level > lo) if hi < 0 else (level > lo)
        if not sel.any():
            continue
        out.append(
            {
                "reference level (dB)": f"{hi:g} to {lo:g}" if np.isfinite(lo) else f"under {hi:g}",
                "frames": int(sel.sum()),
                "share of band energy": float(e_ref[sel].sum() / e_ref.sum()),
                "level error (dB)": float(10 * np.log10((e_est[sel].sum() + 1e-20) / (e_ref[sel].sum() + 1e-20))),
            }
        )
    return out


def summary(ref, est, sample_rate: int = 16000, perceptual: bool = False) -> dict:
    """SNR, SI-SNR, range ratio, mel distance (and PESQ-WB, STOI when `perceptual`)."""
    out = {
        "snr_db": snr(ref, est),
        "si_snr_db": si_snr(ref, est),
        "range_ratio": range_ratio(ref, est),
        "mel_distance": mel_distance(ref, est, sample_rate),
    }
    if perceptual:
        out["pesq_wb"] = pesq_wb(ref, est, sample_rate)
        out["stoi"] = stoi(ref, est, sample_rate)
    return out
