"""Benchmarks: how good is TeluCodec against classical codecs, and how fast is it against EnCodec's architecture.

    python -m telucodec bench quality [--data_dir DIR] [--checkpoint CKPT] [--max_clips N] [--out DIR]
    python -m telucodec bench speed   [--seconds 10] [--repeats 3] [--checkpoint CKPT | --preset full]

Both write a markdown table, a JSON file (results, machine, versions, the command) and, for quality, a
quality-vs-bitrate plot into ``--out`` (default ``results/bench``).  ``--quick`` runs on tiny synthetic
inputs so CI can exercise every code path in seconds; its numbers mean nothing.

Definitions
-----------
* bits/s spent: bytes actually produced for the clip x 8 / clip duration.  TeluCodec: the whole ``.tlc``
  file (payload + 32-byte header/CRC, see :mod:`telucodec.bitstream`); the payload-only rate is also
  stored.  Classical codecs: see :mod:`telucodec.baselines`.
* RTF (real-time factor) = seconds of audio processed / wall-clock seconds.  Higher is faster;
  RTF 50 means one second of audio takes 20 ms.  Warm-up runs are excluded; the median of the repeats
  is reported.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .errors import TeluCodecError

__all__ = ["synthetic_speech", "machine_info", "quality", "speed", "main", "TELUCODEC_KBPS",
           "quality_markdown", "speed_markdown"]

TELUCODEC_KBPS = (1.5, 3.0, 6.0)
DEFAULT_OUT = "results/bench"
SR = 16000


# ------------------------------------------------------------------------------------------ test signal
def synthetic_speech(seconds: float = 3.0, sample_rate: int = SR, seed: int = 0) -> np.ndarray:
    """A deterministic speech-like test signal (float32, peak 0.7): no download, no TTS.

    Syllable-sized segments (80-250 ms) of three kinds: voiced (a glottal pulse train with a wandering
    f0 of 100-250 Hz and a -6 dB/octave tilt, through three formant resonators at random positions),
    fricatives (high-passed noise bursts) and near-silent pauses, each under a smooth envelope, plus a
    little background noise.  Good enough for codec plumbing, delays and bitrates; not a substitute
    for real speech when judging quality.
    """
    from scipy.signal import butter, lfilter, sosfilt
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    out = np.zeros(n)
    hp = butter(4, min(2500.0, 0.4 * sample_rate), "highpass", fs=sample_rate, output="sos")
    pos = int(0.05 * sample_rate)
    while pos < n:
        kind = rng.choice(3, p=[0.75, 0.15, 0.10])  # voiced, fricative, pause
        dur = min(int(rng.uniform(0.08, 0.25) * sample_rate), n - pos)
        if dur <= 1:
            break
        t = np.arange(dur) / sample_rate
        if kind == 0:
            f0 = rng.uniform(100, 220) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(1, 4) * t + rng.uniform(0, 6)))
            phase = np.cumsum(f0) / sample_rate
            src = (np.diff(np.floor(phase), prepend=np.floor(phase[0])) > 0).astype(float)
            src = lfilter([1.0], [1.0, -0.95], src) + 0.02 * rng.standard_normal(dur)
            seg = src
            formants = np.sort(rng.uniform([300, 900, 2200], [900, 2200, 3500]))
            for fc, bw in zip(formants, (80.0, 120.0, 200.0)):
                fc = min(fc, 0.45 * sample_rate)
                r = math.exp(-math.pi * bw / sample_rate)
                seg = lfilter([1 - r], [1.0, -2 * r * math.cos(2 * math.pi * fc / sample_rate), r * r], seg)
        elif kind == 1:
            seg = sosfilt(hp, rng.standard_normal(dur)) * 0.3
        else:
            seg = 0.001 * rng.standard_normal(dur)
        env = np.clip(np.sin(np.pi * np.arange(dur) / (dur - 1)), 0.0, 1.0) ** 0.5
        out[pos:pos + dur] += seg / (np.max(np.abs(seg)) + 1e-9) * env * rng.uniform(0.3, 0.9)
        pos += dur
    out += 1e-3 * rng.standard_normal(n)
    return (0.7 * out / (np.max(np.abs(out)) + 1e-9)).astype(np.float32)


# --------------------------------------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str):
    try:
        from importlib.metadata import version
        return version(module)
    except Exception:
        return None


def machine_info() -> dict:
    """CPU model and core count, GPU (if any), and the versions of everything that affects the numbers."""
    import torch
    info = {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads_default": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_1_5_15min": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    for pkg in ("numpy", "scipy", "av", "pesq", "pystoi", "encodec", "torchaudio"):
        info[pkg] = _version(pkg)
    try:
        from . import __version__
        info["telucodec"] = __version__
    except Exception:
        info["telucodec"] = None
    return info


def _command(argv) -> str:
    return "python -m telucodec bench " + " ".join(str(a) for a in argv) if argv is not None else None


def _write_json(path: Path, obj) -> None:
    def default(o):
        if isinstance(o, (np.floating, np.integer)):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        return str(o)

    def clean(o):
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return o

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(clean(obj), indent=1, default=default) + "\n")
    os.replace(tmp, path)


def _fmt(x, digits=2):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}f}"


# ============================================================================================== quality
def _load_clips(data_dir, max_clips: int, max_seconds: float, quick: bool, split: str | None = None,
                val_fraction: float | None = None):
    """[(name, float32 16 kHz mono)] of held-out speech, and a description of where it came from.

    No data_dir: the validation split of the embedded corpus, built the way the 'full' preset trains
    (``telucodec.data.load_dataset(None, preset('full').train, split='val')``).  With data_dir: every
    usable file under it (``split`` "all" by default; "val" picks the files training would hold out).
    """
    if quick:
        clips = [(f"synthetic-{i}", synthetic_speech(2.0, SR, seed=100 + i)) for i in range(min(max_clips, 2))]
        return clips, "synthetic speech-like signals (--quick: code-path check only, not speech)"
    from . import data as _data
    from .config import preset as _preset
    train_cfg = _preset("full").train  # corpus_minutes, val_fraction; sample rate defaults to 16 kHz
    if val_fraction is not None:       # the split a model was trained with (the shipped model: 0.25)
        from dataclasses import replace as _replace
        train_cfg = _replace(train_cfg, val_fraction=val_fraction)
    if data_dir is None:
        split = split or "val"
        ds = _data.load_dataset(None, train_cfg, split=split)
    else:
        split = split or "all"
        ds = _data.load_dataset(data_dir, train_cfg, split=split)
    source = getattr(ds, "source", None) or str(data_dir or "embedded corpus")
    home = os.path.expanduser("~")
    if home not in ("", "/") and home in source:
        source = source.replace(home, "~")
    if getattr(ds, "sample_rate", SR) != SR:
        raise TeluCodecError(f"expected {SR} Hz clips from {source}, got {ds.sample_rate} Hz")
    names = list(getattr(ds, "names", [f"clip-{i:03d}" for i in range(len(ds))]))
    out = []
    for name, wav in list(zip(names, ds))[:max_clips]:
        wav = np.asarray(wav, dtype=np.float32).reshape(-1)
        if max_seconds and len(wav) > max_seconds * SR:
            wav = wav[: int(max_seconds * SR)]
        out.append((str(name), wav))
    if not out:
        raise TeluCodecError(f"no usable audio clips in {source}")
    return out, source


def _load_telucodec(checkpoint, quick: bool):
    """(CodecModel or None, description)."""
    import telucodec
    if checkpoint is not None:
        return telucodec.load(checkpoint), f"checkpoint {checkpoint}"
    try:
        return telucodec.load(None), "shipped checkpoint"
    except TeluCodecError as exc:
        if quick:
            model = telucodec.CodecModel.untrained("ci", seed=0)
            return model, f"UNTRAINED 'ci' model (--quick code-path check; no checkpoint: {exc})"
        return None, ("pending checkpoint: no --checkpoint given and no shipped checkpoint "
                      "(results/pretrained/telucodec.safetensors)")


def _metrics(ref, est, visqol: bool = False) -> dict:
    from . import metrics as M
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = {"pesq_wb": M.pesq_wb(ref, est, SR), "stoi": M.stoi(ref, est, SR),
               "si_snr_db": M.si_snr(ref, est), "mel_distance": M.mel_distance(ref, est, SR)}
        if visqol:
            out["visqol"] = M.visqol(ref, est, SR)
        return out


def _nanmean(values):
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def quality(data_dir=None, checkpoint=None, max_clips: int = 50, out_dir=None, *, max_seconds: float = 10.0,
            split: str | None = None, quick: bool = False, baselines_to_run=None, command: str | None = None,
            progress=print, visqol: bool = False, val_fraction: float | None = None) -> dict:
    """Score TeluCodec (1.5/3/6 kbps) and the classical baselines on held-out speech.

    Returns a dict with one row per system (mean metrics over clips, bits/s spent), per-clip values,
    the data source, machine and versions.  With `out_dir`, also writes quality.md, quality.json and
    quality.png there.
    """
    from . import baselines as B
    from . import bitstream
    t_start = time.time()
    clips, source = _load_clips(data_dir, max_clips, max_seconds, quick, split, val_fraction)
    total_seconds = sum(len(w) for _, w in clips) / SR
    progress(f"quality: {len(clips)} clips, {total_seconds:.1f} s of audio from {source}")
    model, model_desc = _load_telucodec(checkpoint, quick)
    progress(f"quality: TeluCodec = {model_desc}")

    systems = []  # (key, label, family, target_kbps)
    for kbps in TELUCODEC_KBPS:
        systems.append((f"telucodec-{kbps:g}", f"TeluCodec {kbps:g} kbps", "telucodec", kbps))
    names = list(B.BASELINES) if baselines_to_run is None else list(baselines_to_run)
    unavailable = B.unavailable_baselines()
    for name in names:
        b = B.BASELINES[name]
        systems.append((name, b.label, b.family, b.nominal_kbps))

    rows, per_clip = [], {}
    for key, label, family, kbps in systems:
        row = {"system": key, "label": label, "family": family, "target_kbps": kbps}
        if family == "telucodec" and model is None:
            row.update(status="pending checkpoint", note=model_desc)
            rows.append(row)
            continue
        if family == "telucodec":
            try:
                model.kbps_to_n_q(kbps)
            except TeluCodecError as exc:
                row.update(status="unsupported", note=str(exc))
                rows.append(row)
                continue
        if family != "telucodec" and key in unavailable:
            row.update(status="skipped", note=unavailable[key])
            rows.append(row)
            continue
        clip_rows, bits, payload_bits, notes = [], 0.0, 0.0, set()
        t0 = time.time()
        for name, wav in clips:
            seconds = len(wav) / SR
            if family == "telucodec":
                codes = model.encode(wav, SR, kbps=kbps)  # resamples if the model runs at another rate
                n_model = int(round(len(wav) * model.sample_rate / SR))
                blob = bitstream.pack(codes, sample_rate=model.sample_rate,
                                      codebook_size=model.codec.config.codebook_size,
                                      hop_length=model.codec.hop_length, num_samples=n_model)
                est = model.decode(codes, num_samples=n_model)
                if model.sample_rate != SR:
                    est = B.resample(est, model.sample_rate, SR)[: len(wav)]
                bits += 8 * len(blob)
                payload_bits += 8 * (len(blob) - bitstream.OVERHEAD_BYTES)
                notes.add(f"{codes.shape[0]} codebooks x {model.codec.config.bits_per_code} bits x "
                          f"{model.codec.frame_rate:g} frames/s; bits = whole .tlc file incl. its "
                          f"{bitstream.OVERHEAD_BYTES}-byte header+CRC (payload alone: see kbps_payload in the JSON)")
            else:
                r = B.round_trip(key, wav, SR)
                est = r.decoded
                bits += 8 * r.payload_bytes
                payload_bits += 8 * r.payload_bytes
                notes.add(r.note)
            est = np.asarray(est, dtype=np.float32).reshape(-1)
            if len(est) != len(wav):
                raise TeluCodecError(f"{key}: decoded {len(est)} samples for {len(wav)} in {name}")
            m = _metrics(wav, est, visqol)
            m["clip"] = name
            m["seconds"] = seconds
            clip_rows.append(m)
        row.update(
            status="ok",
            kbps_spent=bits / total_seconds / 1000,
            kbps_payload=payload_bits / total_seconds / 1000,
            pesq_wb=_nanmean(r["pesq_wb"] for r in clip_rows),
            pesq_scored=sum(1 for r in clip_rows if math.isfinite(r["pesq_wb"])),
            stoi=_nanmean(r["stoi"] for r in clip_rows),
            si_snr_db=_nanmean(r["si_snr_db"] for r in clip_rows),
            mel_distance=_nanmean(r["mel_distance"] for r in clip_rows),
            visqol=_nanmean(r["visqol"] for r in clip_rows) if visqol else None,
            seconds_to_run=time.time() - t0,
            note="; ".join(sorted(notes)),
        )
        per_clip[key] = clip_rows
        rows.append(row)
        progress(f"quality: {label:<18} {row['kbps_spent']:6.2f} kbit/s  PESQ-WB {_fmt(row['pesq_wb'])}  "
                 f"STOI {_fmt(row['stoi'], 3)}  SI-SNR {_fmt(row['si_snr_db'], 1)} dB  mel {_fmt(row['mel_distance'], 3)}")

    result = {
        "benchmark": "quality",
        "quick": quick,
        "data_source": source,
        "clips": len(clips),
        "audio_seconds": total_seconds,
        "max_seconds_per_clip": max_seconds,
        "telucodec_model": model_desc,
        "rows": rows,
        "per_clip": per_clip,
        "encoders": B.encoder_report(),
        "machine": machine_info(),
        "command": command,
        "wall_seconds": time.time() - t_start,
    }
    if out_dir is not None:
        _write_quality(result, Path(out_dir))
    return result


def quality_markdown(result: dict) -> str:
    with_visqol = any(r.get("visqol") is not None for r in result["rows"])
    lines = [
        f"Data: {result['data_source']}; {result['clips']} clips, {result['audio_seconds']:.1f} s "
        f"(each cut to at most {result['max_seconds_per_clip']:g} s). TeluCodec: {result['telucodec_model']}.",
        "",
        "| system | target kbit/s | kbit/s spent | PESQ-WB ↑ | STOI ↑ | SI-SNR (dB) ↑ | mel distance ↓ |"
        + (" ViSQOL ↑ |" if with_visqol else ""),
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if with_visqol else ""),
    ]
    for r in result["rows"]:
        if r["status"] != "ok":
            lines.append(f"| {r['label']} | {r['target_kbps']:g} | {r['status']} | | | | |" + (" |" if with_visqol else ""))
            continue
        pesq = _fmt(r["pesq_wb"])
        if r["pesq_scored"] < result["clips"]:
            pesq += f" ({r['pesq_scored']}/{result['clips']} clips)"
        lines.append(f"| {r['label']} | {r['target_kbps']:g} | {r['kbps_spent']:.2f} | {pesq} | {_fmt(r['stoi'], 3)} "
                     f"| {_fmt(r['si_snr_db'], 1)} | {_fmt(r['mel_distance'], 3)} |"
                     + (f" {_fmt(r.get('visqol'))} |" if with_visqol else ""))
    grouped: dict[str, list[str]] = {}
    for r in result["rows"]:
        if r.get("note"):
            grouped.setdefault(r["note"], []).append(r["label"])
    notes = [f"- **{', '.join(labels)}**: {note}" for note, labels in grouped.items()]
    return "\n".join(lines + ["", "Notes:", ""] + notes) + "\n"


def _plot_quality(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [("pesq_wb", "PESQ-WB (MOS-LQO, 1-4.64) ↑"), ("stoi", "STOI (0-1) ↑"),
              ("si_snr_db", "SI-SNR (dB) ↑"), ("mel_distance", "mel distance (log10-mel L1) ↓")]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    families = {"telucodec": ("TeluCodec", "o-", "C0"), "opus": ("Opus", "s--", "C1"),
                "amrnb": ("AMR-NB", "^--", "C2"), "codec2": ("Codec2", "D--", "C3")}
    for ax, (key, ylabel) in zip(axes.flat, panels):
        for fam, (name, style, color) in families.items():
            rows = sorted([r for r in result["rows"] if r["family"] == fam and r["status"] == "ok"],
                          key=lambda r: r["kbps_spent"])
            if rows:
                ax.plot([r["kbps_spent"] for r in rows], [r[key] for r in rows], style, color=color, label=name)
        ax.set_xlabel("bitrate spent (kbit/s)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes.flat[0].legend()
    title = f"Quality vs bitrate: {result['clips']} clips, {result['audio_seconds']:.0f} s"
    if result["quick"]:
        title += " (--quick: synthetic signals, untrained model)"
    if any(r["family"] == "telucodec" and r["status"] != "ok" for r in result["rows"]):
        title += " — TeluCodec pending checkpoint"
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _write_quality(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.md").write_text(quality_markdown(result))
    _write_json(out / "quality.json", result)
    _plot_quality(result, out / "quality.png")


# ================================================================================================ speed
def _sync(device):
    import torch
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


_CPU_TIMES: list = []  # (wall, process CPU) of every timed call, to spot a machine that is busy elsewhere


def _timed(fn, device, cpu_out: list | None = None) -> float:
    """Wall-clock seconds of fn(); its process CPU seconds are appended to cpu_out (and _CPU_TIMES)."""
    _sync(device)
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    _sync(device)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    _CPU_TIMES.append((wall, cpu))
    if cpu_out is not None:
        cpu_out.append(cpu)
    return wall


def _telucodec_codec(checkpoint, preset_name):
    """(nn.Module Codec, description). Speed depends on the architecture only, so untrained is fine."""
    if checkpoint is not None:
        import telucodec
        model = telucodec.load(checkpoint)
        return model.codec, f"TeluCodec from {checkpoint}"
    import torch
    from .config import preset as _preset
    from .fixes import Fixes
    from .model import Codec
    torch.manual_seed(0)
    return Codec(_preset(preset_name).codec, Fixes.all()), f"TeluCodec '{preset_name}' architecture (random weights)"


def _encodec_model():
    try:
        from encodec import EncodecModel
    except ImportError as exc:
        return None, f"encodec not installed ({exc}); pip install encodec to compare"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = EncodecModel.encodec_model_24khz(pretrained=False)
    model.set_target_bandwidth(6.0)
    # EnCodec runs k-means on the first training batch to initialise its codebooks: a one-off cost that a
    # warm-up step would absorb anyway, and slow on CPU. Mark the codebooks initialised instead.
    for layer in model.quantizer.vq.layers:
        if hasattr(layer._codebook, "inited"):
            layer._codebook.inited.fill_(1.0)
    return model, ("EnCodec 24 kHz architecture, random weights (pretrained=False), target 6 kbps "
                   "(8 codebooks); one-off k-means codebook init skipped")


class _Runner:
    """Uniform encode / decode / train-step interface over TeluCodec and EnCodec modules."""

    def __init__(self, kind: str, module, n_q=None):
        self.kind, self.module, self.n_q = kind, module, n_q
        if kind == "telucodec":
            self.sample_rate = module.config.sample_rate
        else:
            self.sample_rate = module.sample_rate

    def params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def bitrate(self) -> float:
        if self.kind == "telucodec":
            return self.module.bitrate(self.n_q)
        return self.module.bandwidth * 1000

    def encode(self, wav):
        if self.kind == "telucodec":
            return self.module.encode_tensor(wav, self.n_q)
        return self.module.encode(wav)

    def decode(self, codes, length):
        if self.kind == "telucodec":
            return self.module.decode_tensor(codes, length)
        return self.module.decode(codes)[..., :length]

    def train_loss(self, wav):
        """Generator training objective, identical for both: TeluCodec's total_loss (L1+MSE, multi-res
        log-mel, VQ loss; all fixes on) applied to each model's own output and VQ penalty."""
        from .fixes import Fixes
        from .losses import total_loss
        if self.kind == "telucodec":
            out = self.module(wav, n_q=self.module.config.n_q)
            est, vq = out["wav"], out["vq_loss"]
        else:
            m = self.module
            emb = m.encoder(wav)
            q = m.quantizer(emb, m.frame_rate, m.bandwidth)
            est = m.decoder(q.quantized)[..., : wav.shape[-1]]
            vq = q.penalty
        return total_loss(est, wav, vq, self.sample_rate, Fixes.all())["total"]


def _time_inference(runners: dict, seconds: float, repeats: int, device) -> dict:
    """Encode and decode times for every model, interleaved: each repeat times model A, then model B, so
    that a background load that comes and goes hits both alike.  One warm-up each; medians reported."""
    import torch
    state = {}
    with torch.inference_mode():
        for key, runner in runners.items():
            n = int(round(seconds * runner.sample_rate))
            wav = torch.from_numpy(synthetic_speech(seconds, runner.sample_rate, seed=7))[None, None].to(device)
            runner.module.to(device).eval()
            codes = runner.encode(wav)                       # warm-up
            out = runner.decode(codes, n)
            if out.shape[-1] != n:
                raise TeluCodecError(f"{key}: decoded {out.shape[-1]} samples for {n}")
            state[key] = (wav, codes, n, {"encode": [], "decode": [], "encode_cpu": [], "decode_cpu": []})
        for _ in range(repeats):
            for key, runner in runners.items():
                wav, codes, n, t = state[key]
                t["encode"].append(_timed(lambda: runner.encode(wav), device, t["encode_cpu"]))
            for key, runner in runners.items():
                wav, codes, n, t = state[key]
                t["decode"].append(_timed(lambda: runner.decode(codes, n), device, t["decode_cpu"]))
    result = {}
    for key, (_, _, _, t) in state.items():
        t_enc, t_dec = statistics.median(t["encode"]), statistics.median(t["decode"])
        c_enc, c_dec = statistics.median(t["encode_cpu"]), statistics.median(t["decode_cpu"])
        result[key] = {"encode_s": t_enc, "decode_s": t_dec, "encode_rtf": seconds / t_enc,
                       "decode_rtf": seconds / t_dec, "round_trip_rtf": seconds / (t_enc + t_dec),
                       "encode_all_s": t["encode"], "decode_all_s": t["decode"],
                       "encode_cpu_s": c_enc, "decode_cpu_s": c_dec,
                       "round_trip_rtf_cpu_time": seconds / (c_enc + c_dec) if c_enc + c_dec > 0 else None}
    return result


def _time_train_step(runners: dict, batch: int, seconds: float, repeats: int, device, warmup: int = 2) -> dict:
    """Time of one training step (forward, backward, AdamW step) per model, interleaved like inference."""
    import torch
    state = {}
    for key, runner in runners.items():
        wav = torch.from_numpy(np.stack([synthetic_speech(seconds, runner.sample_rate, seed=20 + i)
                                         for i in range(batch)]))[:, None].to(device)
        module = runner.module.to(device).train()
        opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)

        def step(runner=runner, wav=wav, opt=opt):
            opt.zero_grad(set_to_none=True)
            loss = runner.train_loss(wav)
            loss.backward()
            opt.step()

        for _ in range(warmup):
            step()
        state[key] = (step, [])
    for _ in range(repeats):
        for key, (step, times) in state.items():
            times.append(_timed(step, device))
    result = {}
    for key, runner in runners.items():
        runner.module.eval()
        times = state[key][1]
        result[key] = {"train_step_s": statistics.median(times), "train_step_all_s": times, "batch": batch,
                       "segment_seconds": seconds}
    return result


def _speed_goals(rows: list, tele_keys: list, all_threads: int) -> list:
    """The 50x goal per TeluCodec model, judged on the better of 1 thread and all threads (on a given CPU one
    can always run with fewer threads), and whether that beats EnCodec's architecture at its best."""
    goals = []
    for key in tele_keys:
        cpu_rows = [r for r in rows if r["model"] == key and r["device"] in ("cpu-1", "cpu-all")]
        if not cpu_rows:
            continue
        best = max(cpu_rows, key=lambda r: r["round_trip_rtf"])
        goal = {"model": key, "round_trip_rtf": best["round_trip_rtf"], "device": best["device"],
                "target": 50.0, "met": best["round_trip_rtf"] >= 50.0, "cpu_threads": all_threads}
        encodec_best = max((r["round_trip_rtf"] for r in rows if r["model"] == "encodec"
                            and r["device"] in ("cpu-1", "cpu-all")), default=None)
        if encodec_best is not None:
            goal["encodec_round_trip_rtf"] = encodec_best
            goal["faster_than_encodec"] = best["round_trip_rtf"] > encodec_best
        goals.append(goal)
    return goals


def speed(seconds: float = 10.0, repeats: int = 3, devices="auto", checkpoint=None, preset: str | None = None,
          out_dir=None, *, train_batch: int = 4, train_seconds: float = 1.0, train_repeats: int | None = None,
          include_encodec: bool = True, quick: bool = False, command: str | None = None, progress=print) -> dict:
    """Encode/decode real-time factors and training-step time: TeluCodec vs EnCodec's 24 kHz architecture.

    devices: "auto" (cpu with 1 thread, cpu with all threads, and cuda if available) or a list of
    "cpu-1", "cpu-all", "cuda".  The training step is timed on one of them: cuda, else cpu-all, else cpu-1.
    """
    import torch
    train_warmup = 2
    if quick:
        seconds, repeats, train_batch, train_seconds, train_warmup = min(seconds, 0.5), 1, 1, 0.25, 1
    preset = preset or ("ci" if quick else "full")
    train_repeats = train_repeats or repeats
    all_threads = os.cpu_count() or torch.get_num_threads()
    if devices == "auto" or devices is None:
        devices = ["cpu-1", "cpu-all"] + (["cuda"] if torch.cuda.is_available() else [])
    elif isinstance(devices, str):
        devices = [d.strip() for d in devices.split(",") if d.strip()]
    for d in devices:
        if d not in ("cpu-1", "cpu-all", "cuda"):
            raise TeluCodecError(f"unknown device {d!r}; use cpu-1, cpu-all or cuda")
        if d == "cuda" and not torch.cuda.is_available():
            raise TeluCodecError("device cuda asked for, but torch sees no CUDA GPU")

    t_start = time.time()
    load_at_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    models = {}
    presets = [None] if checkpoint is not None else [p.strip() for p in str(preset).split(",") if p.strip()]
    for name in presets:
        module, desc = _telucodec_codec(checkpoint, name)
        key = "telucodec" if len(presets) == 1 else f"telucodec-{name}"
        models[key] = (_Runner("telucodec", module, n_q=module.config.n_q_for_kbps(6.0)), desc)
    encodec_note = None
    if include_encodec:
        enc_module, encodec_note = _encodec_model()
        if enc_module is not None:
            models["encodec"] = (_Runner("encodec", enc_module), encodec_note)
    else:
        encodec_note = "EnCodec comparison switched off"

    # the training step is timed once per run: on cuda if asked for, else with all CPU threads, else 1 thread
    train_device = next((d for d in ("cuda", "cpu-all", "cpu-1") if d in devices), None)
    threads_before = torch.get_num_threads()
    rows = []
    cpu_share = {}
    runners = {key: runner for key, (runner, _) in models.items()}
    try:
        for dev in devices:
            device = "cuda" if dev == "cuda" else "cpu"
            threads = 1 if dev == "cpu-1" else all_threads
            torch.set_num_threads(threads)
            _CPU_TIMES.clear()
            timings = _time_inference(runners, seconds, repeats, device)
            if device == "cpu":
                wall = sum(w for w, _ in _CPU_TIMES)
                cpu_share[dev] = sum(c for _, c in _CPU_TIMES) / wall / threads if wall > 0 else None
            if dev == train_device:
                for key, t in _time_train_step(runners, train_batch, train_seconds, train_repeats, device,
                                               warmup=train_warmup).items():
                    timings[key].update(t)
            for key, runner in runners.items():
                r = {"model": key, "device": dev, "threads": threads if device == "cpu" else None,
                     "sample_rate": runner.sample_rate, "bitrate_bps": runner.bitrate(), **timings[key]}
                rows.append(r)
                progress(f"speed: {key:<9} {dev:<7} encode RTF {r['encode_rtf']:8.1f}  decode RTF "
                         f"{r['decode_rtf']:8.1f}  round trip RTF {r['round_trip_rtf']:8.1f}"
                         + (f"  train step {r['train_step_s'] * 1000:8.1f} ms" if "train_step_s" in r else ""))
            for runner in runners.values():
                runner.module.to("cpu")
    finally:
        torch.set_num_threads(threads_before)
        for runner in runners.values():
            runner.module.to("cpu")

    ratios = []
    tele_keys = [k for k in models if k.startswith("telucodec")]
    for key in tele_keys:
        for dev in devices:
            t = next((r for r in rows if r["model"] == key and r["device"] == dev), None)
            e = next((r for r in rows if r["model"] == "encodec" and r["device"] == dev), None)
            if t and e:
                ratio = {"model": key, "device": dev}
                for k in ("encode_rtf", "decode_rtf", "round_trip_rtf"):
                    ratio[k] = t[k] / e[k]
                if "train_step_s" in t and "train_step_s" in e:
                    ratio["train_step_speedup"] = e["train_step_s"] / t["train_step_s"]
                ratios.append(ratio)
    goals = _speed_goals(rows, tele_keys, all_threads)

    result = {
        "benchmark": "speed",
        "quick": quick,
        "audio_seconds": seconds,
        "repeats": repeats,
        "train": {"batch": train_batch, "segment_seconds": train_seconds, "repeats": train_repeats,
                  "warmup": train_warmup,
                  "loss": "telucodec.losses.total_loss (all fixes) on each model's output; AdamW step; "
                          "no discriminator for either model"},
        "models": {k: {"description": d, "parameters": r.params(), "sample_rate": r.sample_rate,
                       "bitrate_bps": r.bitrate()} for k, (r, d) in models.items()},
        "encodec_note": encodec_note,
        "rows": rows,
        "ratios_telucodec_over_encodec": ratios,
        "goal_50x_on_cpu": goals,
        "load_average_at_start": load_at_start,
        "cpu_share": cpu_share,
        "machine": machine_info(),
        "command": command,
        "wall_seconds": time.time() - t_start,
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "speed.md").write_text(speed_markdown(result))
        _write_json(out / "speed.json", result)
    return result


def speed_markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"{result['audio_seconds']:g} s of audio, median of {result['repeats']} timed runs after one warm-up, "
        f"the models interleaved within each repeat. "
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs" + (f", GPU {m['gpu']}" if m.get("gpu") else "")
        + f"; torch {m['torch']}."
        + (f" Load average (1/5/15 min) at start {'/'.join(f'{x:.1f}' for x in result['load_average_at_start'])}, "
           f"at end {'/'.join(f'{x:.1f}' for x in m['load_average_1_5_15min'])}."
           if result.get("load_average_at_start") and m.get("load_average_1_5_15min") else ""),
        "",
    ]
    for key, d in result["models"].items():
        lines.append(f"- **{key}**: {d['description']}; {d['parameters'] / 1e6:.2f} M parameters, "
                     f"{d['sample_rate']} Hz, {d['bitrate_bps'] / 1000:g} kbit/s")
    if "encodec" not in result["models"]:
        lines.append(f"- EnCodec not measured: {result['encodec_note']}")
    share = result.get("cpu_share") or {}
    if share:
        lines += ["", "CPU share during the inference timings (process CPU time / wall time / threads; 1.0 = the "
                  "threads had the cores to themselves): " + ", ".join(f"{k} {v:.2f}" for k, v in share.items()
                                                                      if v is not None) + "."]
    lines += ["", "RTF = audio seconds / wall seconds (higher is faster). The last RTF column divides by the "
              "process CPU time instead, for the 1-thread rows only: it estimates the wall-clock RTF on an idle core "
              "when other jobs share the machine.", "",
              "| model | device | threads | encode RTF | decode RTF | encode+decode RTF | train step (ms) "
              "| encode+decode RTF, CPU time |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        train = f"{r['train_step_s'] * 1000:.1f}" if "train_step_s" in r else "—"
        cpu_rtf = r.get("round_trip_rtf_cpu_time")
        cpu_col = f"{cpu_rtf:.1f}" if cpu_rtf and r.get("threads") == 1 else "—"
        lines.append(f"| {r['model']} | {r['device']} | {r['threads'] or '—'} | {r['encode_rtf']:.1f} | "
                     f"{r['decode_rtf']:.1f} | {r['round_trip_rtf']:.1f} | {train} | {cpu_col} |")
    if result["ratios_telucodec_over_encodec"]:
        lines += ["", "TeluCodec / EnCodec (> 1: TeluCodec faster):", "",
                  "| model | device | encode | decode | encode+decode | train step |", "|---|---|---:|---:|---:|---:|"]
        for r in result["ratios_telucodec_over_encodec"]:
            ts = f"{r['train_step_speedup']:.2f}×" if "train_step_speedup" in r else "—"
            lines.append(f"| {r['model']} | {r['device']} | {r['encode_rtf']:.2f}× | {r['decode_rtf']:.2f}× | "
                         f"{r['round_trip_rtf']:.2f}× | {ts} |")
    t = result["train"]
    if any("train_step_s" in r for r in result["rows"]):
        lines += ["", f"Train step: batch {t['batch']} × {t['segment_seconds']:g} s at each model's own rate; "
                  f"{t['loss']}; median of {t['repeats']} after {t['warmup']} warm-up step(s)."]
    for g in result.get("goal_50x_on_cpu") or []:
        verdict = "met" if g["met"] else "NOT met"
        lines.append(f"Goal for {g['model']}: encode+decode ≥ 50× real time on this {g['cpu_threads']}-thread CPU "
                     f"(best of 1 thread and all threads): {verdict} ({g['round_trip_rtf']:.1f}× with {g['device']})"
                     + ("" if "faster_than_encodec" not in g else
                        f"; faster than EnCodec's architecture at its best ({g['encodec_round_trip_rtf']:.1f}×): "
                        f"{'yes' if g['faster_than_encodec'] else 'no'}") + ".")
    if result["quick"]:
        lines.append("**--quick run: tiny inputs, one repeat; the numbers are not meaningful.**")
    return "\n".join(lines) + "\n"


# ================================================================================================= CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m telucodec bench",
                                description="Quality against classical codecs, and speed against EnCodec.")
    sub = p.add_subparsers(dest="what", required=True)
    q = sub.add_parser("quality", help="PESQ-WB, STOI, SI-SNR, mel distance vs bitrate spent")
    q.add_argument("--data_dir", default=None, help="folder of held-out speech (default: embedded corpus, val split)")
    q.add_argument("--checkpoint", default=None, help="TeluCodec checkpoint (default: the shipped one)")
    q.add_argument("--max_clips", type=int, default=50)
    q.add_argument("--max_seconds", type=float, default=10.0, help="cut each clip to this length")
    q.add_argument("--split", choices=("all", "val", "train"), default=None,
                   help="which files to score (default: val for the embedded corpus, all for --data_dir)")
    q.add_argument("--val_fraction", type=float, default=None,
                   help="the held-out fraction the model was trained with (the shipped model: 0.25)")
    q.add_argument("--visqol", action="store_true", help="also score ViSQOL v3 (speech mode; ~2 s per pair)")
    s = sub.add_parser("speed", help="encode/decode real-time factors and train-step time vs EnCodec")
    s.add_argument("--checkpoint", default=None, help="TeluCodec checkpoint (its architecture is timed)")
    s.add_argument("--preset", default=None,
                   help="architecture(s) to time when no checkpoint is given, e.g. full or full,small,ci "
                        "(default full; ci with --quick)")
    s.add_argument("--seconds", type=float, default=10.0)
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--devices", default="auto", help="auto, or a comma list of cpu-1, cpu-all, cuda")
    s.add_argument("--no_encodec", action="store_true", help="time TeluCodec alone")
    for sp in (q, s):
        sp.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
        sp.add_argument("--quick", action="store_true", help="tiny inputs for CI (numbers not meaningful)")
    return p


def main(argv=None) -> int:
    """`bench.main(["quality", ...])` / `bench.main(["speed", ...])`; prints the table, writes --out."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    progress = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    command = _command(argv)
    if args.what == "quality":
        res = quality(args.data_dir, args.checkpoint, args.max_clips, args.out, max_seconds=args.max_seconds,
                      split=args.split, quick=args.quick, command=command, progress=progress,
                      visqol=args.visqol, val_fraction=args.val_fraction)
        print(quality_markdown(res))
        print(f"wrote {Path(args.out) / 'quality.md'}, quality.json, quality.png")
    else:
        res = speed(args.seconds, args.repeats, args.devices, args.checkpoint, args.preset, args.out,
                    include_encodec=not args.no_encodec, quick=args.quick, command=command, progress=progress)
        print(speed_markdown(res))
        print(f"wrote {Path(args.out) / 'speed.md'}, speed.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
