"""Quality: TeluCodec at 1.5/3/6 kbps against Opus, AMR-NB and Codec2 on held-out speech (PESQ-WB, STOI, ViSQOL,
SI-SNR, mel distance, bits actually spent)."""

from __future__ import annotations

import math
import os
import re
import time
import warnings
from pathlib import Path

import numpy as np

from telucodec.bench.common import SR, TELUCODEC_KBPS, _fmt, _nanmean, _write_json, machine_info, synthetic_speech
from telucodec.errors import TeluCodecError


# ============================================================================================== quality
def _load_clips(
    data_dir,
    max_clips: int,
    max_seconds: float,
    quick: bool,
    split: str | None = None,
    val_fraction: float | None = None,
):
    """[(name, float32 16 kHz mono)] of held-out speech, and a description of where it came from.

    No data_dir: the validation split of the embedded corpus, built the way the 'full' preset trains
    (``telucodec.data.folders.load_dataset(None, preset('full').train, split='val')``).  With data_dir: every
    usable file under it (``split`` "all" by default; "val" picks the files training would hold out).
    """
    if quick:
        clips = [(f"synthetic-{i}", synthetic_speech(2.0, SR, seed=100 + i)) for i in range(min(max_clips, 2))]
        return clips, "synthetic speech-like signals (--quick: code-path check only, not speech)"
    from telucodec.config import preset as _preset
    from telucodec.data import folders as _data

    train_cfg = _preset("full").train  # corpus_minutes, val_fraction; sample rate defaults to 16 kHz
    if val_fraction is not None:  # the split a model was trained with (the shipped model: 0.25)
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
        return None, (
            "pending checkpoint: no --checkpoint given and no shipped checkpoint "
            "(results/pretrained/telucodec.safetensors)"
        )


def _metrics(ref, est, visqol: bool = False) -> dict:
    """The benchmark's four (or five) numbers, from the package's one scoring function."""
    from telucodec.evaluation.scoring import score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row = score(ref, est, SR, perceptual=True, visqol=visqol)
    keys = ("pesq_wb", "stoi", "si_snr_db", "mel_distance") + (("visqol",) if visqol else ())
    return {k: row[k] for k in keys}


def quality(
    data_dir=None,
    checkpoint=None,
    max_clips: int = 50,
    out_dir=None,
    *,
    max_seconds: float = 10.0,
    split: str | None = None,
    quick: bool = False,
    baselines_to_run=None,
    command: str | None = None,
    progress=print,
    visqol: bool = False,
    val_fraction: float | None = None,
) -> dict:
    """Score TeluCodec (1.5/3/6 kbps) and the classical baselines on held-out speech.

    Returns a dict with one row per system (mean metrics over clips, bits/s spent), per-clip values,
    the data source, machine and versions.  With `out_dir`, also writes quality.md, quality.json and
    quality.png there.
    """
    from telucodec.coding import bitstream, tlcfile
    from telucodec.evaluation import baselines as B
    from telucodec.evaluation.baseline_codecs import resample

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
        clip_rows, bits, payload_bits, notes, delays = [], 0.0, 0.0, set(), []
        t0 = time.time()
        for name, wav in clips:
            seconds = len(wav) / SR
            if family == "telucodec":
                codes = model.encode(wav, SR, kbps=kbps)  # resamples if the model runs at another rate
                n_model = int(round(len(wav) * model.sample_rate / SR))
                blob = tlcfile.pack(
                    codes,
                    sample_rate=model.sample_rate,
                    codebook_size=model.codec.config.codebook_size,
                    hop_length=model.codec.hop_length,
                    num_samples=n_model,
                    envelope_stages=model.codec.envelope_stages(codes.shape[0]),
                )
                est = model.decode(codes, num_samples=n_model)
                if model.sample_rate != SR:
                    est = resample(est, model.sample_rate, SR)[: len(wav)]
                bits += 8 * len(blob)
                payload_bits += 8 * (len(blob) - bitstream.OVERHEAD_BYTES)
                notes.add(
                    f"{codes.shape[0]} codebooks x {model.codec.config.bits_per_code} bits x "
                    f"{model.codec.frame_rate:g} frames/s; bits = whole .tlc file incl. its "
                    f"{bitstream.OVERHEAD_BYTES}-byte header+CRC (payload alone: see kbps_payload in the JSON)"
                )
            else:
                r = B.round_trip(key, wav, SR)
                est = r.decoded
                bits += 8 * r.payload_bytes
                payload_bits += 8 * r.payload_bytes
                per_clip_delay = re.sub(
                    r"delay \d+ samples found by cross-correlation \(peak [0-9.]+\)",
                    "delay found per clip by cross-correlation",
                    r.note,
                )
                if per_clip_delay != r.note:
                    delays.append(r.delay_samples)
                notes.add(per_clip_delay)
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
            note="; ".join(sorted(notes))
            + (
                f" ({min(delays)}-{max(delays)} samples at the codec's rate, median {int(np.median(delays))})"
                if delays
                else ""
            ),
        )
        per_clip[key] = clip_rows
        rows.append(row)
        progress(
            f"quality: {label:<18} {row['kbps_spent']:6.2f} kbit/s  PESQ-WB {_fmt(row['pesq_wb'])}  "
            f"STOI {_fmt(row['stoi'], 3)}  SI-SNR {_fmt(row['si_snr_db'], 1)} dB  mel {_fmt(row['mel_distance'], 3)}"
        )

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
            lines.append(
                f"| {r['label']} | {r['target_kbps']:g} | {r['status']} | | | | |" + (" |" if with_visqol else "")
            )
            continue
        pesq = _fmt(r["pesq_wb"])
        if r["pesq_scored"] < result["clips"]:
            pesq += f" ({r['pesq_scored']}/{result['clips']} clips)"
        lines.append(
            f"| {r['label']} | {r['target_kbps']:g} | {r['kbps_spent']:.2f} | {pesq} | {_fmt(r['stoi'], 3)} "
            f"| {_fmt(r['si_snr_db'], 1)} | {_fmt(r['mel_distance'], 3)} |"
            + (f" {_fmt(r.get('visqol'))} |" if with_visqol else "")
        )
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

    panels = [
        ("pesq_wb", "PESQ-WB (MOS-LQO, 1-4.64) ↑"),
        ("stoi", "STOI (0-1) ↑"),
        ("si_snr_db", "SI-SNR (dB) ↑"),
        ("mel_distance", "mel distance (log10-mel L1) ↓"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    families = {
        "telucodec": ("TeluCodec", "o-", "C0"),
        "opus": ("Opus", "s--", "C1"),
        "amrnb": ("AMR-NB", "^--", "C2"),
        "codec2": ("Codec2", "D--", "C3"),
    }
    for ax, (key, ylabel) in zip(axes.flat, panels):
        for fam, (name, style, color) in families.items():
            rows = sorted(
                [r for r in result["rows"] if r["family"] == fam and r["status"] == "ok"], key=lambda r: r["kbps_spent"]
            )
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
