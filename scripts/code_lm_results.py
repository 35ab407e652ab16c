"""Chapter 18's committed results: the code language models scored on the test list, used as entropy coders, and
sampled.

    OMP_NUM_THREADS=1 python scripts/code_lm_results.py

Reads the runs of scripts/train_code_lm.py (checkpoints/tokens/{delay,flat,delay-1200} and, when it exists, the
larger delay-large: each one's best weights on the tune list) and the test list's codes
(checkpoints/tokens/codes_test.npz, scripts/code_tokens.py). Writes results/tokens/:

* code_lm.safetensors: the delay-order model, stored in float16 (every number below is measured on this file as
  loaded back, so the notebook's live cells reproduce them);
* curves.json: the runs' tuning curves;
* results.json: bits per frame, stage by stage, on the 95 test clips (60 unseen speakers) for each model, the
  static coder shipped in the model file and the nominal 10 bits a code; paired clip-level intervals; the LM coder
  run for real on the first 8 s of 24 test clips (exact round trip, bits from the coder's words, encode and decode
  time per second of audio, beside the static coder on the same codes, one thread);
* listening/: for the two CC0 test clips of results/yardstick/listening/, the codec's resynthesis of the first
  3 s followed by 4 s the delay model sampled (temperature 1, top-k 50, seed 0), and the same 3 s followed by
  what was really said next; and 4 s sampled after 3 s of 24 more test clips, scored with DNSMOS beside the real
  continuation (results.json, "samples");
* README.md: the tables, written from results.json.
"""

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FRAME_RATE = 50  # code frames a second (16 kHz, hop 320)


def interval(d):
    """Mean of per-clip differences `d` and a bootstrap 95 % interval (the yardstick's), rounded for the record."""
    from telucodec.evaluation.scoring import bootstrap_interval

    return {**{k: round(v, 3) for k, v in bootstrap_interval(d).items()}, "clips": len(d)}


def readme(r: dict, curves: dict) -> str:
    """results/tokens/README.md, written from the numbers it reports."""
    m, c = r["models"], r["coded"]
    names = {
        "nominal": "nominal (10 bits a code, .tlc v1)",
        "static": "static coder (ships in the model file, .tlc v2)",
        "flat": "language model, flat order",
        "delay": "language model, delay order (code_lm.safetensors)",
        "delay-1200": "language model, delay order, 1200 steps",
        "delay-large": "language model, delay order, larger (not committed)",
    }
    lines = [
        "# Codes as tokens: the code language models (chapter 18)",
        "",
        "Written by `OMP_NUM_THREADS=1 python scripts/code_lm_results.py` from the runs of "
        "`python scripts/train_code_lm.py` on the codes that `python scripts/code_tokens.py --data_root ../shared/data` "
        "extracts (the shipped codec at 6 kbps, the lists of results/speakers/). Chosen on the tune list; scored on the "
        f"test list: {r['test_clips']} clips, {r['test_speakers']} speakers, {r['test_frames']} frames.",
        "",
        "| model | parameters | steps (best) | CPU minutes | bits/frame | kbit/s | fewer than nominal |",
        "|---|---|---|---|---|---|---|",
    ]
    for k, v in m.items():
        run = curves.get(k, {}).get("curve", [{}])[-1]
        lines.append(
            f"| {names.get(k, k)} | {v.get('params', '')} | {run.get('step', '')}"
            + (f" ({v['best_step']})" if "best_step" in v else "")
            + f" | {round(run['train_seconds'] / 60) if run else ''} | {v['bits_per_frame']} | {v['kbps']} | "
            f"{100 * r['saving'][k]:.1f} % |"
        )
    lines += [
        "",
        "Paired per-clip differences in bits per frame (positive: the first spends fewer), bootstrap 95 %:",
        "",
        *[f"- {k}: {v['mean']:+.2f} [{v['low']:+.2f}, {v['high']:+.2f}]" for k, v in r["intervals"].items()],
        "",
        f"Coded for real (range coder, `constriction`), first 8 s of {c['clips']} test clips ({c['seconds']} s), one "
        "thread:",
        "",
        "| coder | kbit/s spent | ideal | exact | encode ms per s | decode ms per s |",
        "|---|---|---|---|---|---|",
        *[
            f"| {k} | {c[k]['kbps']} | {c[k]['ideal_kbps']} | {c[k]['exact']} | "
            f"{1000 * c[k]['encode_seconds_per_second']:.3g} | {1000 * c[k]['decode_seconds_per_second']:.3g} |"
            for k in ("static", "flat", "delay")
        ],
        "",
        "The language model coders decode exactly on the machine that encoded; across machines they are not "
        "guaranteed to (floating-point probabilities), which is why they are a measurement and not a .tlc format.",
        "",
        f"Sampling (listening/): 3 s prompts continued by 4 s, temperature {r['samples']['temperature']}, top-k "
        f"{r['samples']['top_k']}; DNSMOS OVRL of the sampled 4 s minus the real continuation's, both through the "
        f"codec, over {len(r['samples']['clips'])} test clips: "
        f"{r['samples']['dnsmos_sampled_minus_real']['mean']:+.2f} "
        f"[{r['samples']['dnsmos_sampled_minus_real']['low']:+.2f}, "
        f"{r['samples']['dnsmos_sampled_minus_real']['high']:+.2f}]. The listening files are test clips of Common "
        "Voice (CC0).",
        "",
    ]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=str(ROOT / "checkpoints/tokens"))
    ap.add_argument("--out", default=str(ROOT / "results/tokens"))
    ap.add_argument("--coded_clips", type=int, default=24)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    import telucodec
    from telucodec.data.audio_io import write_audio
    from telucodec.tokens import lm_coding
    from telucodec.tokens.lm_fit import CodeSet, block_bits, load_lm, save_lm

    runs, out = Path(args.runs), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    codec = telucodec.load()
    test = CodeSet.load(runs / "codes_test.npz")
    clips = [c.numpy() for c in test.clips()]
    frames = np.array([c.shape[1] for c in clips])
    runs_done = [k for k in ("delay", "flat", "delay-1200", "delay-large") if (runs / k / "curve.json").exists()]
    curves = {k: json.loads((runs / k / "curve.json").read_text()) for k in runs_done}
    (out / "curves.json").write_text(json.dumps(curves, indent=1) + "\n")

    save_lm(
        out / "code_lm.safetensors",
        load_lm(runs / "delay" / "best.safetensors"),
        {
            "trained_on": "results/speakers/lists.tsv train list, shipped codec's codes at 6 kbps",
            "run": curves["delay"]["curve"][-1],
        },
    )
    models = {
        "delay": load_lm(out / "code_lm.safetensors"),
        "flat": load_lm(runs / "flat" / "best.safetensors"),
        "delay-1200": load_lm(runs / "delay-1200" / "best.safetensors"),
    }
    if "delay-large" in curves:  # a larger model, scored but not committed (its weights would be 10 MB)
        models["delay-large"] = load_lm(runs / "delay-large" / "best.safetensors")

    per_clip = {}  # name -> (clips, n_q) bits
    for k, m in models.items():
        t0 = time.time()
        per_clip[k] = block_bits(m, clips)
        print(k, f"{per_clip[k].sum() / frames.sum():.2f} bits/frame in {time.time() - t0:.0f} s", flush=True)
    per_clip["static"] = np.stack([codec.entropy.bits_per_stage(c) for c in clips])
    per_clip["nominal"] = np.outer(frames, np.full(test.codes.shape[0], math.log2(codec.config.codebook_size)))
    record = {
        "test_clips": len(clips),
        "test_speakers": len(set(test.speakers)),
        "test_frames": int(frames.sum()),
        "frame_rate": FRAME_RATE,
        "models": {},
    }
    for k, b in per_clip.items():
        stage = b.sum(0) / frames.sum()
        record["models"][k] = {
            "bits_per_frame": round(float(stage.sum()), 2),
            "kbps": round(float(stage.sum()) * FRAME_RATE / 1000, 3),
            "bits_per_stage": [round(float(x), 3) for x in stage],
        }
        if k in models:
            record["models"][k]["params"] = models[k].n_params()
            record["models"][k]["config"] = models[k].config.to_dict()
            record["models"][k]["best_step"] = min(curves[k]["curve"], key=lambda r: r["tune_bits_per_frame"])["step"]
            record["models"][k]["train_seconds"] = curves[k]["curve"][-1]["train_seconds"]
            record["models"][k]["frames_seen"] = curves[k]["curve"][-1]["frames_seen"]
    bpf = {k: b.sum(1) / frames for k, b in per_clip.items()}  # per clip, bits per frame
    record["saving"] = {
        k: round(1 - record["models"][k]["bits_per_frame"] / record["models"]["nominal"]["bits_per_frame"], 4)
        for k in per_clip
    }
    record["intervals"] = {  # positive: the first spends fewer bits a frame than the second
        "delay_vs_static": interval(bpf["static"] - bpf["delay"]),
        "flat_vs_static": interval(bpf["static"] - bpf["flat"]),
        "delay_vs_flat_less_time": interval(bpf["flat"] - bpf["delay"]),
        "delay1200_vs_flat_equal_frames": interval(bpf["flat"] - bpf["delay-1200"]),
    }
    if "delay-large" in bpf:
        record["intervals"]["large_vs_delay"] = interval(bpf["delay"] - bpf["delay-large"])
    print(json.dumps(record["intervals"]), flush=True)

    # the LM coder for real, beside the static coder, on the first 8 s of some clips
    coded = [c[:, : 8 * FRAME_RATE] for c in clips[: args.coded_clips]]
    seconds = sum(c.shape[1] for c in coded) / FRAME_RATE
    real = {"clips": len(coded), "seconds": round(seconds, 1)}
    for k in ("delay", "flat"):
        m = models[k]
        t0 = time.perf_counter()
        blocks = [lm_coding.encode_clip(m, c) for c in coded]
        t1 = time.perf_counter()
        back = [lm_coding.decode_clip(m, b, c.shape[1]) for b, c in zip(blocks, coded)]
        t2 = time.perf_counter()
        words = sum(len(w) for b in blocks for w in b)
        real[k] = {
            "exact": all(np.array_equal(a, b) for a, b in zip(back, coded)),
            "kbps": round(32 * words / seconds / 1000, 3),
            "ideal_kbps": round(float(block_bits(m, coded).sum()) / seconds / 1000, 3),
            "encode_seconds_per_second": round((t1 - t0) / seconds, 4),
            "decode_seconds_per_second": round((t2 - t1) / seconds, 4),
        }
        print(k, real[k], flush=True)
    e = codec.entropy
    blk = 50  # the .tlc default block
    t0 = time.perf_counter()
    sblocks = [[e.encode(c[:, a : a + blk]) for a in range(0, c.shape[1], blk)] for c in coded]
    t1 = time.perf_counter()
    sback = [
        np.concatenate([e.decode(w, c.shape[0], min(blk, c.shape[1] - i * blk)) for i, w in enumerate(b)], 1)
        for b, c in zip(sblocks, coded)
    ]
    t2 = time.perf_counter()
    real["static"] = {
        "exact": all(np.array_equal(a, b) for a, b in zip(sback, coded)),
        "kbps": round(32 * sum(len(w) for b in sblocks for w in b) / seconds / 1000, 3),
        "ideal_kbps": round(sum(e.bits(c) for c in coded) / seconds / 1000, 3),
        "encode_seconds_per_second": round((t1 - t0) / seconds, 5),
        "decode_seconds_per_second": round((t2 - t1) / seconds, 5),
    }
    print("static", real["static"], flush=True)
    record["coded"] = real

    # sampling: continue unseen speakers' first 3 s by 4 s; listen to two, score 24 with DNSMOS
    from telucodec.data.speakers import read_list
    from telucodec.evaluation.yardstick import dnsmos_ovrl

    listen = out / "listening"
    listen.mkdir(exist_ok=True)
    utts = read_list(ROOT / "results/speakers/lists.tsv", "test")
    chosen = [c["file"] for c in json.loads((ROOT / "results/yardstick/listening/samples.json").read_text())["clips"]]
    heard = [next(j for j, u in enumerate(utts) if u.file == f) for f in chosen]
    long_enough = [j for j in range(len(clips)) if clips[j].shape[1] >= 6 * FRAME_RATE]
    scored = sorted(set(heard) | set(long_enough[: args.coded_clips]))
    rows, took = [], 0.0
    for i in scored:
        codes = clips[i]
        prompt = codes[:, : 3 * FRAME_RATE]
        t0 = time.perf_counter()
        sampled = lm_coding.continue_codes(models["delay"], prompt, 4 * FRAME_RATE, temperature=1.0, top_k=50, seed=0)
        took += time.perf_counter() - t0
        wav_s = codec.decode(np.concatenate([prompt, sampled], 1))
        wav_r = codec.decode(codes)
        cut = 3 * 16000
        row = {
            "file": utts[i].file,
            "speaker": utts[i].speaker,
            "real_seconds_after_prompt": round(codes.shape[1] / FRAME_RATE - 3, 2),
            "dnsmos_sampled": round(dnsmos_ovrl(wav_s[cut:]), 3),
            "dnsmos_real": round(dnsmos_ovrl(wav_r[cut:]), 3),
            "bits_per_frame_sampled": round(float(block_bits(models["delay"], [sampled]).sum()) / sampled.shape[1], 2),
            "bits_per_frame_real": round(float(per_clip["delay"][i].sum()) / codes.shape[1], 2),
        }
        rows.append(row)
        if i in heard:
            stem = Path(utts[i].file).stem
            write_audio(listen / f"{stem}_sampled.flac", wav_s, 16000)
            write_audio(listen / f"{stem}_real.flac", wav_r, 16000)
            row["listening"] = [f"{stem}_sampled.flac", f"{stem}_real.flac"]
        print(row, flush=True)
    record["samples"] = {
        "prompt_seconds": 3,
        "sampled_seconds": 4,
        "temperature": 1.0,
        "top_k": 50,
        "seed": 0,
        "sampling_seconds_per_second": round(took / (4 * len(rows)), 4),
        "dnsmos_sampled_minus_real": interval([r["dnsmos_sampled"] - r["dnsmos_real"] for r in rows]),
        "clips": rows,
    }
    # chapter 18's exercises, measured on the demo sentence with the committed model (their solutions quote these)
    from telucodec.cli.demo import demo_speech

    lm = models["delay"]
    demo = codec.encode(demo_speech()[1], 16000, kbps=6.0)
    n = demo.shape[1]
    base = block_bits(lm, [demo])[0]
    shuffled = block_bits(lm, [demo[:, np.random.default_rng(0).permutation(n)]])[0]
    short = sum(block_bits(lm, [demo[:, a : a + 16]])[0] for a in range(0, n, 16))
    prompt = demo[:, : 2 * FRAME_RATE]
    temps = {}
    for t in (0.7, 1.0, 1.3):
        more = lm_coding.continue_codes(lm, prompt, 2 * FRAME_RATE, temperature=t, top_k=50, seed=0)
        temps[str(t)] = round(float(block_bits(lm, [more]).sum()) / more.shape[1], 2)
    record["exercises"] = {
        "demo_bits_per_frame": round(float(base.sum()) / n, 2),
        "shuffled_extra_bits_per_stage": [round(float(x), 2) for x in (shuffled - base) / n],
        "shuffled_bits_per_frame": round(float(shuffled.sum()) / n, 2),
        "blocks16_bits_per_frame": round(float(short.sum()) / n, 2),
        "sampled_bits_per_frame_by_temperature": temps,
    }
    print(record["exercises"], flush=True)
    record["command"] = "OMP_NUM_THREADS=1 python scripts/code_lm_results.py"
    (out / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    (out / "README.md").write_text(readme(record, curves))


if __name__ == "__main__":
    main()
