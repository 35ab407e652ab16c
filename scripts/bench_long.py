"""Long inputs in bounded memory (issue 28): peak memory and speed of `python -m telucodec encode` / `decode` on a
20-minute and a 2-hour recording, each command measured as a user runs it, under `/usr/bin/time -v`, on one thread.

    python scripts/bench_long.py                       # 20 min, then 2 h if the 20 min run predicts it fits
    python scripts/bench_long.py --minutes 20          # only 20 min
    python scripts/bench_long.py --minutes 20 120 --budget 0      # 2 h whatever it costs

The input is synthetic and written in blocks (never held whole): a speech-like harmonic tone whose pitch and
loudness wander, with noise and pauses, at 16 kHz, 16-bit. Peak memory is the command's maximum resident set
size; "x real time" is the audio's duration over the command's wall-clock time (Python start-up and model loading
included). A start-up baseline (import + load, no audio) is measured the same way. Also measured: the streaming
API's delay (telucodec.coding.streaming.measure_delay) and its compute per 20 ms frame when fed frame by frame.

Writes results/bench/long/bench_long.json and results/bench/long/README.md. The audio goes to --workdir
(default: a temporary folder), never into the repository.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "bench" / "long"
SR = 16000
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TQDM_DISABLE": "1",
    "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
}


def write_synthetic(path: Path, seconds: float, block_seconds: float = 60.0, seed: int = 0) -> float:
    """A speech-like synthetic recording of `seconds`, written block by block. Returns the seconds written."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    n_total = int(round(seconds * SR))
    block = int(block_seconds * SR)
    phase = 0.0
    with sf.SoundFile(str(path), "w", SR, 1, subtype="PCM_16", format="WAV") as f:
        for start in range(0, n_total, block):
            n = min(block, n_total - start)
            t = (start + np.arange(n)) / SR
            f0 = 130 + 40 * np.sin(2 * np.pi * 0.23 * t) + 15 * np.sin(2 * np.pi * 3.1 * t)
            ph = phase + 2 * np.pi * np.cumsum(f0) / SR
            phase = float(ph[-1] % (2 * np.pi))
            voiced = sum(np.sin(k * ph) / k for k in range(1, 12))
            syllables = np.clip(np.sin(2 * np.pi * 4.0 * t) + 0.3, 0, None) * (np.sin(2 * np.pi * 0.11 * t) > -0.8)
            x = (
                0.12 * voiced * syllables
                + 0.01 * rng.standard_normal(n)
                + 0.03 * rng.standard_normal(n) * (np.sin(2 * np.pi * 1.7 * t) > 0.9)
            )
            f.write(np.clip(x, -1, 1).astype(np.float32))
    return n_total / SR


_TIME_FIELDS = {
    "max_rss_kb": r"Maximum resident set size \(kbytes\): (\d+)",
    "wall": r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)",
    "user_s": r"User time \(seconds\): ([\d.]+)",
    "system_s": r"System time \(seconds\): ([\d.]+)",
}


def _seconds(clock: str) -> float:
    parts = [float(p) for p in clock.split(":")]
    return sum(p * 60**i for i, p in enumerate(reversed(parts)))


def timed(cmd: list, nice: int) -> dict:
    """Run `cmd` under /usr/bin/time -v (and nice); return wall, user, system seconds and peak RSS."""
    full = ["nice", "-n", str(nice), "/usr/bin/time", "-v", *cmd]
    t0 = time.perf_counter()
    p = subprocess.run(full, env=ENV, capture_output=True, text=True, cwd=ROOT)
    wall_py = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    out = {"command": " ".join(cmd), "stdout": p.stdout.strip()}
    for key, pattern in _TIME_FIELDS.items():
        m = re.search(pattern, p.stderr)
        out[key] = m.group(1) if m else None
    out["wall_s"] = _seconds(out.pop("wall")) if out.get("wall") else wall_py
    out["max_rss_mb"] = int(out.pop("max_rss_kb")) / 1024
    out["user_s"], out["system_s"] = float(out["user_s"]), float(out["system_s"])
    return out


def load_average() -> list:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def streaming_figures(checkpoint) -> dict:
    """Delay (stated and measured) and compute per frame of the streaming API, frame by frame, one thread."""
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT))
    import telucodec
    from telucodec.coding import receptive_field, streaming

    model = telucodec.load(checkpoint)
    delay = streaming.measure_delay(model, seconds=1.0, block=1)
    ctx = receptive_field.context(model)
    x = (0.1 * np.random.default_rng(1).standard_normal(10 * SR)).astype(np.float32)
    hop = model.config.hop_length
    enc = model.stream_encoder()
    t0 = time.perf_counter()
    frames = [enc.push(x[i : i + hop]) for i in range(0, x.size, hop)]
    enc_s = time.perf_counter() - t0
    codes = np.concatenate(frames + [enc.flush()], axis=1)
    dec = model.stream_decoder(n_q=codes.shape[0])
    t0 = time.perf_counter()
    for j in range(codes.shape[1]):
        dec.push(codes[:, j : j + 1])
    dec_s = time.perf_counter() - t0
    n = codes.shape[1]
    return {
        **delay,
        "context": ctx.__dict__,
        "live_encode_ms_per_frame": 1000 * enc_s / n,
        "live_decode_ms_per_frame": 1000 * dec_s / n,
        "frame_ms": 1000 * hop / model.sample_rate,
        "opus_algorithmic_delay_ms_at_20ms_frames": 26.5,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="+", default=[20, 120])
    ap.add_argument("--checkpoint", default=None, help="default: the shipped model")
    ap.add_argument("--kbps", type=float, default=6.0)
    ap.add_argument(
        "--budget",
        type=float,
        default=300.0,
        help="skip a longer case whose encode+decode the "
        "previous case predicts to take more than this many seconds (0: no limit)",
    )
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--workdir", default=None, help="where the audio goes (default: a temporary folder)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="telucodec-bench-long-"))
    work.mkdir(parents=True, exist_ok=True)
    ck = ["--checkpoint", str(args.checkpoint)] if args.checkpoint else []
    py = [sys.executable, "-m", "telucodec"]
    report = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "threads": 1,
            "nice": args.nice,
            "load_average_at_start": load_average(),
        },
        "checkpoint": args.checkpoint or "shipped (results/pretrained/telucodec.safetensors)",
        "kbps": args.kbps,
        "cases": [],
    }
    try:
        import torch

        report["machine"]["torch"] = torch.__version__
    except ImportError:
        pass
    print("start-up baseline (import + load) ...", flush=True)
    load_cmd = [sys.executable, "-c", f"import telucodec; telucodec.load({args.checkpoint!r})"]
    report["startup"] = timed(load_cmd, args.nice)
    rate = None  # seconds of compute per second of audio, from the last case
    try:
        for minutes in sorted(args.minutes):
            seconds = minutes * 60
            if rate is not None and args.budget and rate * seconds > args.budget:
                print(f"{minutes:g} min: skipped (predicted {rate * seconds:.0f} s > --budget {args.budget:g} s)")
                report["cases"].append(
                    {
                        "minutes": minutes,
                        "skipped": f"predicted {rate * seconds:.0f} s of encode+decode > budget {args.budget:g} s",
                    }
                )
                continue
            wav, tlc, dec = (
                work / f"in_{minutes:g}min.wav",
                work / f"in_{minutes:g}min.tlc",
                work / f"out_{minutes:g}min.wav",
            )
            print(f"{minutes:g} min: writing {wav} ...", flush=True)
            t0 = time.perf_counter()
            duration = write_synthetic(wav, seconds)
            gen_s = time.perf_counter() - t0
            print(f"{minutes:g} min: encode ...", flush=True)
            enc = timed(py + ["encode", str(wav), str(tlc), "--kbps", str(args.kbps)] + ck, args.nice)
            print(f"  {enc['wall_s']:.1f} s, {enc['max_rss_mb']:.0f} MB; decode ...", flush=True)
            de = timed(py + ["decode", str(tlc), str(dec)] + ck, args.nice)
            print(f"  {de['wall_s']:.1f} s, {de['max_rss_mb']:.0f} MB", flush=True)
            import soundfile as sf

            info = sf.info(str(dec))
            case = {
                "minutes": minutes,
                "audio_seconds": duration,
                "generate_seconds": round(gen_s, 1),
                "input_bytes": wav.stat().st_size,
                "tlc_bytes": tlc.stat().st_size,
                "decoded_samples": info.frames,
                "decoded_samples_match": info.frames == int(round(duration * SR)),
                "encode": enc,
                "decode": de,
                "encode_x_realtime": duration / enc["wall_s"],
                "decode_x_realtime": duration / de["wall_s"],
                "encode_plus_decode_x_realtime": duration / (enc["wall_s"] + de["wall_s"]),
                "peak_memory_mb": max(enc["max_rss_mb"], de["max_rss_mb"]),
                "load_average_after": load_average(),
            }
            report["cases"].append(case)
            rate = (enc["wall_s"] + de["wall_s"]) / duration
            for p in (wav, tlc, dec):
                p.unlink(missing_ok=True)
        print("streaming delay and per-frame compute ...", flush=True)
        report["streaming"] = streaming_figures(args.checkpoint)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    report["machine"]["load_average_at_end"] = load_average()
    (out_dir / "bench_long.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "README.md").write_text(markdown(report))
    print(markdown(report))
    return 0


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        "# Long inputs in bounded memory (issue 28)",
        "",
        f"`python scripts/bench_long.py` on {r['date']}: {m['cpu']}, {m['cores']} cores, one thread "
        f"(OMP_NUM_THREADS=1), `nice -n {m['nice']}`, torch {m.get('torch', '?')}; load average "
        f"{m['load_average_at_start']} at the start and {m.get('load_average_at_end')} at the end (other jobs "
        f"shared the machine: times are upper bounds). Model: {r['checkpoint']}, {r['kbps']:g} kbps. Each command "
        f"runs as a user runs it (`python -m telucodec encode in.wav out.tlc`, then `decode`), under "
        f"`/usr/bin/time -v`: peak memory is its maximum resident set size, x real time is the audio's duration "
        f"over its wall-clock time, start-up and model loading included.",
        "",
        "| input | encode peak memory | decode peak memory | encode | decode | encode + decode |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c in r["cases"]:
        if "skipped" in c:
            lines.append(f"| {c['minutes']:g} min | skipped: {c['skipped']} | | | | |")
            continue
        e, d = c["encode"], c["decode"]
        lines.append(
            f"| {c['minutes']:g} min | {e['max_rss_mb']:.0f} MB | {d['max_rss_mb']:.0f} MB | "
            f"{e['wall_s']:.1f} s ({c['encode_x_realtime']:.0f}x) | {d['wall_s']:.1f} s ({c['decode_x_realtime']:.0f}x) | "
            f"{e['wall_s'] + d['wall_s']:.1f} s ({c['encode_plus_decode_x_realtime']:.0f}x) |"
        )
    s = r["startup"]
    lines += [
        "",
        f"Start-up alone (`import telucodec; telucodec.load()`): {s['wall_s']:.1f} s, "
        f"{s['max_rss_mb']:.0f} MB. Before chunking (issue 28's table, whole-file in one piece) 20 minutes "
        f"took 4.9 GB to encode and 5.9 GB to decode, 61 s and 102 s.",
    ]
    st = r.get("streaming")
    if st:
        ms = 1000 / st["sample_rate"]
        lines += [
            "",
            "## Streaming delay",
            "",
            "The codec is non-causal, so its delay is its look-ahead, measured by back-propagating from one frame "
            "(telucodec.coding.receptive_field.context) and confirmed by pushing samples one at a time "
            "(telucodec.coding.streaming.measure_delay):",
            "",
            f"- encoder: a {st['frame_ms']:.0f} ms frame plus {st['encoder_lookahead_samples']} samples "
            f"({st['encoder_lookahead_samples'] * ms:.2f} ms) of look-ahead = {st['encoder_delay_ms']:.2f} ms "
            f"(measured: {st['encoder_delay_measured_samples']} samples);",
            f"- decoder: {st['decoder_delay_samples'] // st['hop_length']} frames of look-ahead = "
            f"{st['decoder_delay_ms']:.1f} ms (measured: {st['decoder_delay_measured_samples']} samples; "
            f"{st['context']['decoder_margin']} frame of it is a safety margin for the envelope gains' "
            f"interpolation);",
            f"- encoder + decoder: **{st['total_delay_ms']:.1f} ms** of algorithmic delay, against Opus's "
            f"{st['opus_algorithmic_delay_ms_at_20ms_frames']} ms at 20 ms frames.",
            "",
            f"Fed one 20 ms frame at a time (each push recomputes its context: no cached state), one thread: "
            f"{st['live_encode_ms_per_frame']:.2f} ms to encode and {st['live_decode_ms_per_frame']:.2f} ms to "
            f"decode per 20 ms frame.",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
