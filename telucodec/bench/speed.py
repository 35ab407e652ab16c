"""Speed: encode/decode real-time factors and training-step time, TeluCodec against EnCodec's architecture in the
same run.

`speed()` runs the benchmark over devices and thread counts and derives the ratios and the 50x goal;
`speed_markdown()` reports it. The models timed are in telucodec.bench.speed_models, the timing in
telucodec.bench.speed_timing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from telucodec.bench.common import _write_json, machine_info
from telucodec.bench.speed_models import Runner, encodec_model, telucodec_codec
from telucodec.bench.speed_timing import CPU_TIMES, time_inference, time_train_step
from telucodec.errors import TeluCodecError


def _speed_goals(rows: list, tele_keys: list, all_threads: int) -> list:
    """The 50x goal per TeluCodec model, judged on the better of 1 thread and all threads (on a given CPU one
    can always run with fewer threads), and whether that beats EnCodec's architecture at its best."""
    goals = []
    for key in tele_keys:
        cpu_rows = [r for r in rows if r["model"] == key and r["device"] in ("cpu-1", "cpu-all")]
        if not cpu_rows:
            continue
        best = max(cpu_rows, key=lambda r: r["round_trip_rtf"])
        goal = {
            "model": key,
            "round_trip_rtf": best["round_trip_rtf"],
            "device": best["device"],
            "target": 50.0,
            "met": best["round_trip_rtf"] >= 50.0,
            "cpu_threads": all_threads,
        }
        encodec_best = max(
            (r["round_trip_rtf"] for r in rows if r["model"] == "encodec" and r["device"] in ("cpu-1", "cpu-all")),
            default=None,
        )
        if encodec_best is not None:
            goal["encodec_round_trip_rtf"] = encodec_best
            goal["faster_than_encodec"] = best["round_trip_rtf"] > encodec_best
        goals.append(goal)
    return goals


def speed(
    seconds: float = 10.0,
    repeats: int = 3,
    devices="auto",
    checkpoint=None,
    preset: str | None = None,
    out_dir=None,
    *,
    train_batch: int = 4,
    train_seconds: float = 1.0,
    train_repeats: int | None = None,
    include_encodec: bool = True,
    quick: bool = False,
    command: str | None = None,
    progress=print,
) -> dict:
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
        module, desc = telucodec_codec(checkpoint, name)
        key = "telucodec" if len(presets) == 1 else f"telucodec-{name}"
        models[key] = (Runner("telucodec", module, n_q=module.config.n_q_for_kbps(6.0)), desc)
    encodec_note = None
    if include_encodec:
        enc_module, encodec_note = encodec_model()
        if enc_module is not None:
            models["encodec"] = (Runner("encodec", enc_module), encodec_note)
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
            CPU_TIMES.clear()
            timings = time_inference(runners, seconds, repeats, device)
            if device == "cpu":
                wall = sum(w for w, _ in CPU_TIMES)
                cpu_share[dev] = sum(c for _, c in CPU_TIMES) / wall / threads if wall > 0 else None
            if dev == train_device:
                for key, t in time_train_step(
                    runners, train_batch, train_seconds, train_repeats, device, warmup=train_warmup
                ).items():
                    timings[key].update(t)
            for key, runner in runners.items():
                r = {
                    "model": key,
                    "device": dev,
                    "threads": threads if device == "cpu" else None,
                    "sample_rate": runner.sample_rate,
                    "bitrate_bps": runner.bitrate(),
                    **timings[key],
                }
                rows.append(r)
                progress(
                    f"speed: {key:<9} {dev:<7} encode RTF {r['encode_rtf']:8.1f}  decode RTF "
                    f"{r['decode_rtf']:8.1f}  round trip RTF {r['round_trip_rtf']:8.1f}"
                    + (f"  train step {r['train_step_s'] * 1000:8.1f} ms" if "train_step_s" in r else "")
                )
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
        "train": {
            "batch": train_batch,
            "segment_seconds": train_seconds,
            "repeats": train_repeats,
            "warmup": train_warmup,
            "loss": "telucodec.training.losses.total_loss (all fixes) on each model's output; AdamW step; "
            "no discriminator for either model",
        },
        "models": {
            k: {"description": d, "parameters": r.params(), "sample_rate": r.sample_rate, "bitrate_bps": r.bitrate()}
            for k, (r, d) in models.items()
        },
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
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs"
        + (f", GPU {m['gpu']}" if m.get("gpu") else "")
        + f"; torch {m['torch']}."
        + (
            f" Load average (1/5/15 min) at start {'/'.join(f'{x:.1f}' for x in result['load_average_at_start'])}, "
            f"at end {'/'.join(f'{x:.1f}' for x in m['load_average_1_5_15min'])}."
            if result.get("load_average_at_start") and m.get("load_average_1_5_15min")
            else ""
        ),
        "",
    ]
    for key, d in result["models"].items():
        lines.append(
            f"- **{key}**: {d['description']}; {d['parameters'] / 1e6:.2f} M parameters, "
            f"{d['sample_rate']} Hz, {d['bitrate_bps'] / 1000:g} kbit/s"
        )
    if "encodec" not in result["models"]:
        lines.append(f"- EnCodec not measured: {result['encodec_note']}")
    share = result.get("cpu_share") or {}
    if share:
        lines += [
            "",
            "CPU share during the inference timings (process CPU time / wall time / threads; 1.0 = the "
            "threads had the cores to themselves): "
            + ", ".join(f"{k} {v:.2f}" for k, v in share.items() if v is not None)
            + ".",
        ]
    lines += [
        "",
        "RTF = audio seconds / wall seconds (higher is faster). The last RTF column divides by the "
        "process CPU time instead, for the 1-thread rows only: it estimates the wall-clock RTF on an idle core "
        "when other jobs share the machine.",
        "",
        "| model | device | threads | encode RTF | decode RTF | encode+decode RTF | train step (ms) "
        "| encode+decode RTF, CPU time |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        train = f"{r['train_step_s'] * 1000:.1f}" if "train_step_s" in r else "—"
        cpu_rtf = r.get("round_trip_rtf_cpu_time")
        cpu_col = f"{cpu_rtf:.1f}" if cpu_rtf and r.get("threads") == 1 else "—"
        lines.append(
            f"| {r['model']} | {r['device']} | {r['threads'] or '—'} | {r['encode_rtf']:.1f} | "
            f"{r['decode_rtf']:.1f} | {r['round_trip_rtf']:.1f} | {train} | {cpu_col} |"
        )
    if result["ratios_telucodec_over_encodec"]:
        lines += [
            "",
            "TeluCodec / EnCodec (> 1: TeluCodec faster):",
            "",
            "| model | device | encode | decode | encode+decode | train step |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for r in result["ratios_telucodec_over_encodec"]:
            ts = f"{r['train_step_speedup']:.2f}×" if "train_step_speedup" in r else "—"
            lines.append(
                f"| {r['model']} | {r['device']} | {r['encode_rtf']:.2f}× | {r['decode_rtf']:.2f}× | "
                f"{r['round_trip_rtf']:.2f}× | {ts} |"
            )
    t = result["train"]
    if any("train_step_s" in r for r in result["rows"]):
        lines += [
            "",
            f"Train step: batch {t['batch']} × {t['segment_seconds']:g} s at each model's own rate; "
            f"{t['loss']}; median of {t['repeats']} after {t['warmup']} warm-up step(s).",
        ]
    for g in result.get("goal_50x_on_cpu") or []:
        verdict = "met" if g["met"] else "NOT met"
        lines.append(
            f"Goal for {g['model']}: encode+decode ≥ 50× real time on this {g['cpu_threads']}-thread CPU "
            f"(best of 1 thread and all threads): {verdict} ({g['round_trip_rtf']:.1f}× with {g['device']})"
            + (
                ""
                if "faster_than_encodec" not in g
                else f"; faster than EnCodec's architecture at its best ({g['encodec_round_trip_rtf']:.1f}×): "
                f"{'yes' if g['faster_than_encodec'] else 'no'}"
            )
            + "."
        )
    if result["quick"]:
        lines.append("**--quick run: tiny inputs, one repeat; the numbers are not meaningful.**")
    return "\n".join(lines) + "\n"
