"""The full GPU run of the book: the pretrained codec, the nine-run ablation, throughput and evaluation.

    python -m telucodec experiments --out results/gpu [--extra_data_dir data/telugu-cv-dev] [--steps N]
    python -m telucodec experiments --dry-run         # the same code path on CPU in about a minute

Nine runs share one GPU concurrently (each in its own process): Fixes.none(), Fixes.all(), and each of the seven
fixes left out alone, all on the same data, seed and number of steps. The Fixes.all() run is exported as the
shipped pretrained checkpoint. Every run is evaluated on a validation split never trained on.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from telucodec.config import preset as get_preset
from telucodec.fixes import SEVEN, Fixes

ABLATION = ["none", "all"] + [f"all-{name}" for name in SEVEN]


def _clips(args, ccfg, tcfg, split):
    """Embedded corpus plus, optionally, a folder of real speech (split by file, never mixed across splits)."""
    from telucodec.data.folders import load_dataset, spec_for

    spec = spec_for(ccfg, tcfg)
    clips = list(load_dataset(args.corpus_dir, spec, split))
    if args.extra_data_dir:
        clips += list(load_dataset(args.extra_data_dir, spec, split))
    return clips


def _write_wav(path: Path, wav: np.ndarray, sr: int):
    try:
        import soundfile as sf

        sf.write(f"{path}.flac", np.clip(wav, -1, 1), sr, subtype="PCM_16")
    except ImportError:  # the GPU image has no soundfile: plain 16-bit WAV through the standard library
        import wave

        with wave.open(f"{path}.wav", "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(sr)
            w.writeframes((np.clip(wav, -1, 1) * 32767).astype("<i2").tobytes())


def evaluate_full(model, clips, sr, n_qs=(3, 6, 12), max_seconds=4.0) -> dict:
    """SNR, SI-SNR, mel distance, range ratio (+ PESQ-WB and STOI when installed) at each bitrate, on the first
    `max_seconds` of each clip (telucodec.evaluation.scoring.evaluate_clips, crop policy "first")."""
    from telucodec.evaluation.scoring import evaluate_clips

    try:
        import pesq  # noqa: F401  (the GPU image may lack them)
        import pystoi  # noqa: F401

        perceptual = True
    except ImportError:
        perceptual = False
    kbps = tuple(model.config.bitrate(n) / 1000 for n in n_qs)
    table = evaluate_clips(model, clips, kbps=kbps, crop="first", seconds=max_seconds, perceptual=perceptual)
    out = {k: v for k, v in table.items() if k.endswith("kbps")}
    for row in out.values():
        row.pop("clips", None)
        if not perceptual:
            row.update(pesq_wb=None, stoi=None)
    return out


def _configuration(recipe_name: str, preset: str, run: str):
    """(CodecConfig, TrainConfig, Fixes, ingredients) of one run: a fix configuration of the story's codec
    ("none", "all", "all-<fix>", ...) or a run of the working-recipe ablation ("working", "working-<name>")."""
    if recipe_name == "story":
        p = get_preset(preset)
        return p.codec, p.train, Fixes.parse(run), ()
    from telucodec.training.recipes import configuration

    r = configuration(run, preset)
    return r.codec, r.train, r.fixes, r.ingredients


def run_one(args) -> int:
    """One training run (a child process): train, evaluate, write result.json, curves and samples."""
    from telucodec.training.batches import eval_crops
    from telucodec.training.loop import fit
    from telucodec.training.validation import evaluate

    p = get_preset(args.preset)
    # the same clips for every configuration: the split and the evaluation never depend on the recipe
    data_tcfg = replace(p.train, seed=args.seed)
    train_clips = _clips(args, p.codec, data_tcfg, "train")
    val_clips = _clips(args, p.codec, data_tcfg, "val")
    ccfg, tcfg, fixes, ingredients = _configuration(args.recipe, args.preset, args.one)
    tcfg = replace(tcfg, amp=args.amp, batch_size=args.batch_size or tcfg.batch_size, seed=args.seed)
    out = Path(args.out) / "runs" / args.one
    out.mkdir(parents=True, exist_ok=True)
    done = out / "result.json"
    if done.exists():  # a finished run is kept: a long ablation can be restarted in several sittings
        old = json.loads(done.read_text())
        if old.get("steps") == args.steps and old.get("seed", args.seed) == args.seed:
            print(f"{args.one}: already done ({done}); kept")
            return 0
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    result = fit(
        args.preset,
        fixes,
        (train_clips, val_clips),
        codec_config=ccfg,
        train_config=tcfg,
        steps=args.steps,
        device=args.device,
        checkpoint_dir=out,
        experiment_name="checkpoints",
        log_every=25,
        print_epochs=False,
        progress=False,
        resume=True,
    )  # an interrupted run continues
    seconds = time.perf_counter() - t0
    segment = tcfg.segment_seconds * tcfg.batch_size
    sr = p.codec.sample_rate
    evaluation = evaluate_full(result.model, val_clips[: args.eval_clips], sr)
    diag = evaluate(result.model, eval_crops(val_clips, sr * 2, args.eval_clips), device=dev)
    record = {
        "name": args.one,
        "seed": args.seed,
        "fixes": fixes.to_dict(),
        "enabled": fixes.enabled(),
        "preset": args.preset,
        "recipe": args.recipe,
        "ingredients": list(ingredients),
        "steps": result.step,
        "seconds": seconds,
        "steps_per_s": result.step / seconds,
        "audio_s_per_s": result.step * segment / seconds,
        "amp": tcfg.amp,
        "peak_gpu_memory_gb": (torch.cuda.max_memory_allocated() / 1e9) if dev.type == "cuda" else None,
        "evaluation": evaluation,
        "diagnostics": diag,
        "history": result.history,
        "epochs": result.epochs,
        "train_clips": len(train_clips),
        "val_clips": len(val_clips),
        "train_minutes": sum(len(c) for c in train_clips) / sr / 60,
    }
    (out / "result.json").write_text(json.dumps(record, indent=1))
    from telucodec.evaluation.scoring import reconstruct

    for i, clip in enumerate(val_clips[:3]):
        x = clip[: sr * 4]
        if args.one in ("all", "none", "working"):
            _write_wav(out / f"sample{i}_original", x, sr)
        for n_q in (3, 6, 12):
            _write_wav(out / f"sample{i}_{p.codec.bitrate(n_q) / 1000:g}kbps", reconstruct(result.model, x, n_q), sr)
    if args.one == "all":
        from telucodec.coding.inference import export_safetensors

        export_safetensors(
            result.model,
            Path(args.out) / "telucodec.safetensors",
            {"data": args.data_note, "command": " ".join(sys.argv), "steps": result.step},
        )
    return 0


def precision_probe(args) -> dict:
    """bf16 versus fp32 step time for Fixes.all() on the same batch, measured in this run."""
    from telucodec.codec.model import Codec
    from telucodec.training.batches import crop_batch
    from telucodec.training.losses import total_loss

    p = get_preset(args.preset)
    dev = torch.device(args.device)
    seg = int(p.train.segment_seconds * p.codec.sample_rate)
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(seg * 4).astype(np.float32) * 0.1 for _ in range(4)]
    x = crop_batch(clips, 0, args.batch_size or p.train.batch_size, seg).to(dev)
    out = {}
    for amp in ("off", "bf16"):
        torch.manual_seed(0)
        model = Codec(p.codec, Fixes.all()).to(dev)
        opt = torch.optim.AdamW(model.parameters(), 1e-4)
        times = []
        for i in range(args.probe_steps):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp == "bf16"):
                o = model(x)
                loss = total_loss(o["wav"], x, o["vq_loss"], p.codec.sample_rate, Fixes.all())["total"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        step = float(np.median(times[2:] if len(times) > 4 else times))
        out[amp] = {"step_s": step, "steps_per_s": 1 / step}
    out["bf16_speedup"] = out["off"]["step_s"] / out["bf16"]["step_s"]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m telucodec experiments",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--out", default="results/gpu")
    ap.add_argument("--dry-run", action="store_true", help="ci preset on CPU, a few steps: tests the code path")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--preset", default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--amp", default=None, choices=["bf16", "fp16", "off"])
    ap.add_argument("--batch_size", type=int, default=None)
    ap.add_argument("--corpus_dir", default=None, help="a folder of pre-synthesised corpus audio (default: build it)")
    ap.add_argument("--extra_data_dir", default=None, help="real speech added to training and validation")
    ap.add_argument("--data_note", default="embedded eSpeak NG Telugu corpus")
    ap.add_argument("--eval_clips", type=int, default=16)
    ap.add_argument("--probe_steps", type=int, default=20)
    ap.add_argument("--parallel", type=int, default=9, help="runs sharing the device at once")
    ap.add_argument("--seed", type=int, default=0, help="training seed (initialisation, crops, dropout)")
    ap.add_argument(
        "--recipe",
        default="story",
        choices=["story", "working"],
        help="story: runs are fix configurations (none, all, all-<fix>); working: runs of the working "
        "recipe's ablation (working, working-<ingredient>, working-<fix>)",
    )
    ap.add_argument(
        "--runs",
        default=None,
        help="comma list of configurations (default: the nine, or with "
        "--recipe working the recipe and each ingredient off)",
    )
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.dry_run:
        args.preset = args.preset or "ci"
        args.device = args.device or "cpu"
        args.steps = args.steps or 6
        args.amp = args.amp or "off"
        args.eval_clips = min(args.eval_clips, 2)
        args.probe_steps = min(args.probe_steps, 3)
        args.parallel = min(args.parallel, 2)
    args.preset = args.preset or "full"
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.amp = args.amp or ("bf16" if args.device.startswith("cuda") else "off")
    args.steps = args.steps or 3000
    if args.one:
        return run_one(args)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    probe = precision_probe(args)
    base = [
        sys.executable,
        "-m",
        "telucodec",
        "experiments",
        "--out",
        str(out),
        "--steps",
        str(args.steps),
        "--preset",
        args.preset,
        "--device",
        args.device,
        "--amp",
        args.amp,
        "--eval_clips",
        str(args.eval_clips),
        "--data_note",
        args.data_note,
        "--seed",
        str(args.seed),
        "--recipe",
        args.recipe,
    ]
    for flag in ("corpus_dir", "extra_data_dir", "batch_size"):
        if getattr(args, flag):
            base += [f"--{flag}", str(getattr(args, flag))]
    if args.runs is None:
        from telucodec.training.recipes import WORKING_ABLATION

        args.runs = ",".join(WORKING_ABLATION if args.recipe == "working" else ABLATION)
    names = [n for n in args.runs.split(",") if n]
    for n in names:
        _configuration(args.recipe, args.preset, n)  # fail early on a typo
    pending, running, failed = list(names), [], []
    while pending or running:
        while pending and len(running) < args.parallel:
            name = pending.pop(0)
            log = open(out / f"{name}.log", "w")
            running.append((name, subprocess.Popen(base + ["--one", name], stdout=log, stderr=subprocess.STDOUT)))
        time.sleep(0.5)
        for name, proc in list(running):
            if proc.poll() is not None:
                running.remove((name, proc))
                if proc.returncode:
                    failed.append(name)
    runs = {}
    for name in names:
        path = out / "runs" / name / "result.json"
        if path.exists():
            runs[name] = json.loads(path.read_text())
    summary = {
        "command": "python -m telucodec experiments " + " ".join(argv if argv is not None else sys.argv[2:]),
        "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "cpu",
        "torch": torch.__version__,
        "preset": args.preset,
        "recipe": args.recipe,
        "steps": args.steps,
        "amp": args.amp,
        "seed": args.seed,
        "wall_seconds": time.perf_counter() - t0,
        "precision_probe": probe,
        "failed": failed,
        "data": args.data_note,
        "runs": {
            k: {
                kk: v[kk]
                for kk in (
                    "enabled",
                    "steps",
                    "seconds",
                    "steps_per_s",
                    "audio_s_per_s",
                    "peak_gpu_memory_gb",
                    "evaluation",
                    "diagnostics",
                )
            }
            for k, v in runs.items()
        },
    }
    (out / "ablation.json").write_text(json.dumps(summary, indent=1))
    _plot(runs, out)
    print(json.dumps({k: v["evaluation"].get("6kbps") for k, v in summary["runs"].items()}, indent=1))
    print(f"wall time {summary['wall_seconds']:.0f} s; failed: {failed or 'none'}")
    return 1 if failed else 0


def _plot(runs: dict, out: Path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    for name, r in runs.items():
        steps = [h["step"] for h in r["history"]]
        axes[0].plot(steps, [h["recon"] for h in r["history"]], label=name, lw=0.8)
        axes[1].plot(steps, [h["output_peak"] for h in r["history"]], lw=0.8)
        axes[2].plot([e["step"] for e in r["epochs"]], [e["snr_db"] for e in r["epochs"]], lw=0.8)
    for ax, y in zip(axes, ("recon loss (L1+MSE)", "output peak (full scale)", "validation SNR (dB)")):
        ax.set_xlabel("step")
        ax.set_ylabel(y)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "ablation_curves.png", dpi=80)
