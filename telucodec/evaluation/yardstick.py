"""The yardstick: a codec against Opus on voices it never heard, at equal bits spent.

Four rules, each a function here so that a test can hold it:

* **Unseen voices.** Clips come from a speaker list (telucodec.data.speakers): tune on "tune", report on "test".
* **Bits spent, not nominal rates.** TeluCodec's bits are the length of its ``.tlc`` bytes
  (:func:`telucodec_round_trip`); Opus's are its raw packets, no container (:func:`opus_round_trip`). Opus is
  variable-rate and spends under its target; :func:`equal_bits_target` picks the lowest Opus target whose spent
  rate is at least 95 % of ours.
* **Levels.** Every clip is scored as recorded and at -35, -25 and -15 LUFS (:func:`set_level`: BS.1770 gain, then
  the full-scale limit any real recording has, applied to the reference too).
* **Differences.** A claim needs a paired clip-level bootstrap interval that excludes zero
  (telucodec.evaluation.scoring.paired_difference); otherwise "no measurable difference"
  (telucodec.evaluation.yardstick_report.compare).

The goal metrics are PESQ-WB, STOI, SI-SNR and DNSMOS P.835 OVRL (:func:`dnsmos_ovrl`, the ONNX model that the
`speechmos` package ships, run offline); ViSQOL and a log-mel distance limited to 0-4 kHz (so that a narrowband
codec is not judged on the band it drops) are reported beside them. :func:`passband_hz` measures each system's
bandwidth, which every table names.

This module runs the systems on the clips and scores them (:func:`run`); the verdicts, merging and tables of a run
are telucodec.evaluation.yardstick_report.
"""

from __future__ import annotations

import warnings

import numpy as np

LEVELS = (None, -35.0, -25.0, -15.0)  # None: as recorded
OPUS_TARGETS = (6.0, 8.0, 10.0, 12.0)
OPUS_APPLICATIONS = ("voip", "audio")
GOAL_METRICS = ("pesq_wb", "stoi", "si_snr_db", "dnsmos_ovrl")
REPORTED_METRICS = ("visqol", "mel_distance_4k")
EQUAL_BITS_FRACTION = 0.95


def level_name(lufs: float | None) -> str:
    return "as recorded" if lufs is None else f"{lufs:g} LUFS"


# ------------------------------------------------------------------------------------------------- levels
def set_level(wav: np.ndarray, sample_rate: int, lufs: float | None) -> tuple[np.ndarray, float]:
    """(the clip at `lufs` integrated loudness (ITU-R BS.1770), fraction of samples clipped at full scale).
    `lufs=None` keeps the clip as recorded. Samples beyond +-1 are clipped, as any recording would be: the clipped
    signal is then both the codec's input and the reference it is scored against."""
    wav = np.asarray(wav, dtype=np.float64)
    if lufs is not None:
        from telucodec.data.audio_io import loudness_lufs

        now = loudness_lufs(wav.astype(np.float32), sample_rate)
        if not np.isfinite(now):
            raise ValueError("the clip is too quiet or too short to measure its loudness")
        wav = wav * 10 ** ((lufs - now) / 20)
    clipped = float(np.mean(np.abs(wav) > 1.0))
    return np.clip(wav, -1.0, 1.0).astype(np.float32), clipped


# ------------------------------------------------------------------------------------------------- systems
def telucodec_round_trip(model, wav: np.ndarray, kbps: float, entropy: bool = True, fixed_bits: bool = False):
    """(decoded audio, bits spent): the codes packed as the .tlc file `encode` writes (entropy-coded, version 2,
    when the model carries an entropy model and `entropy` is True; else version 1); bits = its length x 8.
    `fixed_bits`: also return the bits of the same codes without entropy coding (version 1), from the one encode."""
    codes = model.encode(wav, model.sample_rate, kbps=kbps)
    data = model.pack(codes, len(wav), entropy=entropy)
    stream = model.unpack(data)
    out = model.decode(stream.codes, stream.num_samples).astype(np.float32)
    if not fixed_bits:
        return out, 8 * len(data)
    fixed = data if stream.version == 1 else model.pack(codes, len(wav), entropy=False)
    return out, 8 * len(data), 8 * len(fixed)


def opus_round_trip(
    wav: np.ndarray, sample_rate: int, kbps: float, application: str = "voip"
) -> tuple[np.ndarray, int]:
    """(decoded audio, bits spent) through libopus (PyAV), VBR at target `kbps`, 20 ms frames, the given
    application ("voip" or "audio"). Bits = the raw Opus packets, no container."""
    import fractions

    import av

    from telucodec.evaluation.baseline_codecs import _decode_av, resample

    if application not in OPUS_APPLICATIONS:
        raise ValueError(f"application must be one of {OPUS_APPLICATIONS}")
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate, ctx.layout, ctx.format = sample_rate, "mono", "flt"
    ctx.bit_rate = int(kbps * 1000)
    ctx.time_base = fractions.Fraction(1, sample_rate)
    ctx.options = {"application": application}
    ctx.open()
    n = ctx.frame_size or sample_rate // 50
    x = np.clip(np.asarray(wav, dtype=np.float32), -1, 1)
    packets = []
    for i, start in enumerate(range(0, len(x), n)):
        chunk = x[start : start + n]
        if len(chunk) < n:
            chunk = np.concatenate([chunk, np.zeros(n - len(chunk), np.float32)])
        frame = av.AudioFrame.from_ndarray(chunk[None], format="flt", layout="mono")
        frame.sample_rate, frame.pts = sample_rate, i * n
        packets.extend(ctx.encode(frame))
    packets.extend(ctx.encode(None))
    bits = 8 * sum(p.size for p in packets)
    dec = av.CodecContext.create("libopus", "r")
    dec.extradata = ctx.extradata
    y, rate = _decode_av(dec, packets)
    y = resample(y, rate, sample_rate)[: len(x)]
    if len(y) < len(x):
        y = np.concatenate([y, np.zeros(len(x) - len(y))])
    return y.astype(np.float32), bits


def equal_bits_target(ours_kbps: float, opus_spent: dict) -> float:
    """The lowest Opus target whose spent rate (kbit/s, `opus_spent[target]`) is at least 95 % of `ours_kbps`;
    the highest target if none reaches it."""
    for target in sorted(opus_spent):
        if opus_spent[target] >= EQUAL_BITS_FRACTION * ours_kbps:
            return target
    return max(opus_spent)


# ------------------------------------------------------------------------------------------------- metrics
_DNSMOS: dict = {}


def dnsmos_ovrl(wav: np.ndarray, sample_rate: int = 16000) -> float:
    """DNSMOS P.835 OVRL (1-5, Reddy et al. 2022) of one clip, no reference needed: the ONNX model the
    `speechmos` package ships, run offline on one thread, averaged over 9.01 s windows hopped by 1 s (a shorter
    clip is tiled, as Microsoft's script does). The P.808 model is not run."""
    if sample_rate != 16000:
        raise ValueError("DNSMOS needs 16 kHz audio")
    if "session" not in _DNSMOS:
        import os

        import onnxruntime as ort
        import speechmos

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        path = os.path.join(os.path.dirname(speechmos.__file__), "dnsmos_models", "sig_bak_ovr.onnx")
        _DNSMOS["session"] = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    audio = np.clip(np.asarray(wav, dtype=np.float32), -1, 1)
    need = int(9.01 * sample_rate)
    if not audio.size or not np.any(audio):
        return float("nan")
    while len(audio) < need:
        audio = np.concatenate([audio, audio])
    hops = int(np.floor(len(audio) / sample_rate) - 9.01) + 1
    ovrl = np.poly1d([-0.06766283, 1.11546468, 0.04602535])
    scores = []
    for i in range(max(hops, 1)):
        seg = audio[i * sample_rate : i * sample_rate + need]
        if len(seg) < need:
            continue
        raw = _DNSMOS["session"].run(None, {"input_1": seg[None]})[0][0]
        scores.append(float(ovrl(raw[2])))
    return float(np.mean(scores)) if scores else float("nan")


def mel_distance_4k(ref: np.ndarray, est: np.ndarray, sample_rate: int = 16000) -> float:
    """Mean L1 distance of log10 mel magnitudes (64 bands, 0-4 kHz, 32 ms windows, floor 1e-5) between reference
    and decoded audio: the band every codec in the table keeps, narrowband Opus included."""
    import librosa

    n = min(len(ref), len(est))
    mels = [
        librosa.feature.melspectrogram(
            y=np.asarray(s[:n], np.float32), sr=sample_rate, n_fft=512, hop_length=128, n_mels=64, fmax=4000, power=1.0
        )
        for s in (ref, est)
    ]
    return float(np.mean(np.abs(np.log10(np.maximum(mels[0], 1e-5)) - np.log10(np.maximum(mels[1], 1e-5)))))


def passband_hz(refs: list, ests: list, sample_rate: int = 16000, drop_db: float = 20.0) -> float:
    """A system's measured bandwidth: the lowest frequency above 1 kHz where its output's long-term spectrum,
    summed over the clips, falls `drop_db` under the input's (in 250 Hz bands); the Nyquist frequency if it never
    does."""
    from scipy.signal import welch

    p_ref = sum(welch(np.asarray(r, np.float64), sample_rate, nperseg=1024)[1] for r in refs)
    f, _ = welch(np.asarray(refs[0], np.float64), sample_rate, nperseg=1024)
    p_est = sum(welch(np.asarray(e, np.float64), sample_rate, nperseg=1024)[1] for e in ests)
    edges = np.arange(0, sample_rate / 2 + 1, 250.0)
    for lo, hi in zip(edges[:-1], edges[1:]):
        if lo < 1000:
            continue
        sel = (f >= lo) & (f < hi)
        ratio = 10 * np.log10((p_est[sel].sum() + 1e-30) / (p_ref[sel].sum() + 1e-30))
        if ratio < -drop_db:
            return float(lo)
    return sample_rate / 2


def score_clip(ref: np.ndarray, est: np.ndarray, sample_rate: int = 16000, visqol: bool = False) -> dict:
    """The goal metrics and the reported ones for one decoded clip (NaN where a metric cannot score it)."""
    from telucodec.evaluation import metrics

    n = min(len(ref), len(est))
    ref, est = np.asarray(ref[:n], np.float32), np.asarray(est[:n], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row = {
            "pesq_wb": metrics.pesq_wb(ref, est, sample_rate),
            "stoi": metrics.stoi(ref, est, sample_rate),
            "si_snr_db": metrics.si_snr(ref, est),
            "dnsmos_ovrl": dnsmos_ovrl(est, sample_rate),
            "mel_distance_4k": mel_distance_4k(ref, est, sample_rate),
        }
        if visqol:
            row["visqol"] = metrics.visqol(ref, est, sample_rate)
    return row


# ------------------------------------------------------------------------------------------------- clips
def test_clips(
    list_path, root, which: str = "test", per_speaker: int = 1, seconds: float = 8.0, sample_rate: int = 16000
) -> list[tuple[str, np.ndarray]]:
    """[(name, audio)]: the first `per_speaker` clips (in list order) of every speaker of list `which`, each cut
    to its first `seconds`."""
    from telucodec.data.speakers import load_list, read_list

    chosen, count = [], {}
    for u in read_list(list_path, which):
        key = (u.corpus, u.speaker)
        if count.get(key, 0) < per_speaker:
            count[key] = count.get(key, 0) + 1
            chosen.append(u)
    n = int(seconds * sample_rate)
    return [(u.file, wav[:n]) for u, wav in load_list(chosen, root, sample_rate)]


def summarise(per_clip: list, keys=GOAL_METRICS + REPORTED_METRICS) -> dict:
    """Mean of each metric over clips (NaN-aware)."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for k in keys:
            vals = [r[k] for r in per_clip if k in r]
            if vals:
                out[k] = float(np.nanmean(vals))
    out["clips"] = len(per_clip)
    return out


# ------------------------------------------------------------------------------------------------- the run
def choose_application(clips: list, sample_rate: int = 16000, targets=(6.0, 8.0)) -> dict:
    """Opus's application chosen on the *tuning* clips: the one with the higher mean PESQ-WB over `targets`.
    Returns {"application", "pesq_wb": {application: mean}}."""
    from telucodec.evaluation import metrics

    means = {}
    for app in OPUS_APPLICATIONS:
        vals = []
        for _, x in clips:
            for t in targets:
                y, _ = opus_round_trip(x, sample_rate, t, app)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    vals.append(metrics.pesq_wb(x, y, sample_rate))
        means[app] = float(np.nanmean(vals))
    return {"application": max(means, key=means.get), "pesq_wb": means}


def run(
    model,
    clips: list,
    levels=LEVELS,
    kbps=(1.5, 3.0, 6.0),
    opus_targets=OPUS_TARGETS,
    application: str = "voip",
    visqol_levels=(None,),
    full_levels=(None,),
    progress=None,
    others: dict | None = None,
) -> dict:
    """Score `model` (a CodecModel) and Opus on `clips` ([(name, audio)]) at every level. At the levels in
    `full_levels` every TeluCodec rate and Opus target is scored; at the others TeluCodec's 3 and 6 kbps, Opus 6
    and Opus at equal bits to TeluCodec 6 (measured as recorded). `others` = {system name: (CodecModel, kbps)}:
    more codecs scored at every level beside them (an earlier model, say). Returns {"systems": {system: {level: {"kbps":
    spent, "per_clip": [...], "mean": {...}}}}, "passband_hz": {system: Hz}, "equal_bits": {...}, ...}."""
    sr = model.sample_rate
    systems: dict = {}
    decoded_as_recorded: dict = {}

    def add(system, level, name, ref, est, bits, bits_fixed=None):
        entry = systems.setdefault(system, {}).setdefault(
            level_name(level), {"bits": 0, "seconds": 0.0, "per_clip": []}
        )
        if bits_fixed is not None:
            entry["bits_fixed"] = entry.get("bits_fixed", 0) + bits_fixed
        row = {"clip": name, **score_clip(ref, est, sr, visqol=level in visqol_levels)}
        entry["per_clip"].append(row)
        entry["bits"] += bits
        entry["seconds"] += len(ref) / sr
        if level is None:
            decoded_as_recorded.setdefault(system, ([], []))
            decoded_as_recorded[system][0].append(ref)
            decoded_as_recorded[system][1].append(est)

    ordered = sorted(levels, key=lambda v: (v is not None, v or 0))  # as recorded first: it sets equal bits
    equal = None
    for level in ordered:
        full = level in full_levels
        rates = kbps if full else tuple(k for k in kbps if k >= 3.0)
        for i, (name, clip) in enumerate(clips):
            ref, _ = set_level(clip, sr, level)
            for k in rates:
                est, bits, fixed = telucodec_round_trip(model, ref, k, fixed_bits=True)
                add(f"TeluCodec {k:g} kbps", level, name, ref, est, bits, fixed)
            for system, (other, k) in (others or {}).items():
                est, bits = telucodec_round_trip(other, ref, k)
                add(system, level, name, ref, est, bits)
            targets = opus_targets if full else sorted({6.0, equal or 8.0})
            for t in targets:
                est, bits = opus_round_trip(ref, sr, t, application)
                add(f"Opus {t:g} kbps", level, name, ref, est, bits)
            if progress:
                progress(level, i)
        if level is None and equal is None:
            spent = {
                t: systems[f"Opus {t:g} kbps"]["as recorded"] for t in opus_targets if f"Opus {t:g} kbps" in systems
            }
            ours = systems[f"TeluCodec {max(kbps):g} kbps"]["as recorded"]
            equal = equal_bits_target(
                ours["bits"] / ours["seconds"] / 1000, {t: e["bits"] / e["seconds"] / 1000 for t, e in spent.items()}
            )
    for system, by_level in systems.items():
        for entry in by_level.values():
            entry["kbps"] = entry["bits"] / entry["seconds"] / 1000
            if "bits_fixed" in entry:
                entry["kbps_fixed"] = entry["bits_fixed"] / entry["seconds"] / 1000
            entry["mean"] = summarise(entry["per_clip"])
    passband = {s: passband_hz(*decoded_as_recorded[s], sr) for s in decoded_as_recorded}
    return {
        "systems": systems,
        "passband_hz": passband,
        "application": application,
        "clips": len(clips),
        "equal_bits_opus_target": equal,
        "levels": [level_name(v) for v in ordered],
        "others": list(others or {}),
    }
