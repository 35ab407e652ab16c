"""Bits per second with and without entropy coding (.tlc version 2 against version 1), on voices never heard.

    OMP_NUM_THREADS=1 python scripts/entropy_bits.py --data_root ../shared/data

The shipped model (results/pretrained/telucodec.safetensors) codes the train list's clips (results/speakers/lists.tsv)
at 1.5, 3 and 6 kbps; entropy models are fitted on those codes (telucodec.coding.entropy_fit.fit): one prior per stage
(contexts=1) and priors conditioned on the previous stage's code (contexts=4, 16, 64). Every clip of the tune list
(speakers in no training data) is then coded and written both ways: the .tlc files' bits per second, header and CRC
included, and of the payload alone, beside the model's ideal (information content); the block size's cost; and
encode + decode speed (x real time, one thread) with and without entropy coding, measured in the same run,
alternating. Writes results/entropy/README.md, results/entropy/entropy_bits.json and, when under 1 MB, the
contexts=16 model's tables alone (results/entropy/entropy_model.safetensors; attach them to the shipped model
with `model.entropy = EntropyModel.from_tensors(*load_weights_safetensors(path))`: the fitted model is not written
into results/pretrained/).
"""

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONTEXTS = (1, 4, 16, 64)
CHOSEN = 16
BLOCKS = (25, 50, 100, 250, 1000)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(ROOT / "results/pretrained/telucodec.safetensors"))
    ap.add_argument("--list", default=str(ROOT / "results/speakers/lists.tsv"))
    ap.add_argument("--data_root", required=True)
    ap.add_argument("--out", default=str(ROOT / "results/entropy"))
    ap.add_argument("--max_train_clips", type=int, default=0, help="0: all")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    import telucodec
    from telucodec.coding import bitstream as bs
    from telucodec.coding import tlcfile
    from telucodec.coding.checkpoint import save_weights_safetensors
    from telucodec.coding.entropy import META_KEY
    from telucodec.coding.entropy_fit import collect_codes, fit
    from telucodec.data.speakers import load_list, read_list

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = telucodec.load(args.checkpoint)
    cfg, sr = model.config, model.sample_rate
    n_qs = [n for n in cfg.n_q_choices if n <= cfg.n_q]
    rates = {n: cfg.bitrate(n) / 1000 for n in n_qs}
    t0 = time.time()
    train_utts = read_list(args.list, "train")
    if args.max_train_clips:
        train_utts = train_utts[: args.max_train_clips]
    train = [w for _, w in load_list(train_utts, args.data_root, sr, workers=1)]
    tune = load_list(read_list(args.list, "tune"), args.data_root, sr, workers=1)
    log(
        f"{len(train)} train clips ({sum(map(len, train)) / sr / 3600:.2f} h), {len(tune)} tune clips "
        f"({sum(len(w) for _, w in tune) / sr / 60:.1f} min) loaded in {time.time() - t0:.0f} s"
    )
    t0 = time.time()
    train_codes = collect_codes(model, train, n_qs)
    log(f"train list coded at {n_qs} stages in {time.time() - t0:.0f} s")
    models = {}
    for m in CONTEXTS:
        t0 = time.time()
        models[m] = fit(train_codes, cfg.codebook_size, contexts=m)
        models[m].report["fit_seconds"] = round(time.time() - t0, 1)
        log(f"contexts={m}: {models[m]} fitted in {time.time() - t0:.0f} s")
    del train_codes

    tune_seconds = sum(len(w) for _, w in tune) / sr
    tune_codes = collect_codes(model, [w for _, w in tune], n_qs)
    frames = sum(c.shape[1] for c in tune_codes[n_qs[0]])
    per_rate = {}
    for n in n_qs:
        codes = tune_codes[n]
        v1 = [
            len(
                tlcfile.pack(
                    c,
                    sample_rate=sr,
                    codebook_size=cfg.codebook_size,
                    hop_length=cfg.hop_length,
                    num_samples=len(w),
                    envelope_stages=model.codec.envelope_stages(n),
                )
            )
            for c, (_, w) in zip(codes, tune)
        ]
        row = {
            "kbps": rates[n],
            "n_q": n,
            "v1_bps": 8 * sum(v1) / tune_seconds,
            "v1_payload_bps": 8 * (sum(v1) - bs.OVERHEAD_BYTES * len(v1)) / tune_seconds,
            "v1_bits_per_code": float(np.log2(cfg.codebook_size)),
        }
        for m, em in models.items():
            sizes = []
            for c, (_, w) in zip(codes, tune):
                model.entropy = em
                data = model.pack(c, len(w))
                assert np.array_equal(model.unpack(data).codes, c)  # exact round trip, every clip
                sizes.append(len(data))
            ideal = sum(em.bits(c) for c in codes)
            row[f"contexts_{m}"] = {
                "bps": 8 * sum(sizes) / tune_seconds,
                "payload_bps": 8 * (sum(sizes) - bs.OVERHEAD_BYTES_V2 * len(sizes)) / tune_seconds,
                "ideal_bps": ideal / tune_seconds,
                "bits_per_code": ideal / (n * frames),
                "fit_bits_per_code": em.report["fit_bits_per_code"][str(n)],
            }
        em = models[CHOSEN]
        row["block_frames_payload_bps"] = {}
        for b in BLOCKS:
            size = sum(
                len(
                    tlcfile.pack(
                        c,
                        sample_rate=sr,
                        codebook_size=cfg.codebook_size,
                        hop_length=cfg.hop_length,
                        num_samples=len(w),
                        envelope_stages=model.codec.envelope_stages(n),
                        entropy=em,
                        block_frames=b,
                    )
                )
                - bs.OVERHEAD_BYTES_V2
                for c, (_, w) in zip(codes, tune)
            )
            row["block_frames_payload_bps"][str(b)] = 8 * size / tune_seconds
        per_rate[f"{rates[n]:g}"] = row
        log(json.dumps(row))

    # speed: encode + .tlc + decode, one thread, v1 and v2 alternating clip by clip
    model.entropy = models[CHOSEN]
    speed = {}
    for n in n_qs:
        kbps = rates[n]
        total = {"v1": 0.0, "v2": 0.0}
        coding = {"v1": 0.0, "v2": 0.0}
        for i, (_, w) in enumerate(tune):
            for version in ("v1", "v2") if i % 2 == 0 else ("v2", "v1"):
                t_start = time.perf_counter()
                codes = model.encode(w, sr, kbps)
                t_pack = time.perf_counter()
                stream = model.unpack(model.pack(codes, len(w), entropy=version == "v2"))
                t_unpack = time.perf_counter()
                model.decode(stream.codes, stream.num_samples)
                t_end = time.perf_counter()
                total[version] += t_end - t_start
                coding[version] += t_unpack - t_pack
        speed[f"{kbps:g}"] = {
            "x_real_time_v1": tune_seconds / total["v1"],
            "x_real_time_v2": tune_seconds / total["v2"],
            "pack_unpack_x_real_time_v1": tune_seconds / coding["v1"],
            "pack_unpack_x_real_time_v2": tune_seconds / coding["v2"],
            "entropy_share_of_v2_time": (coding["v2"] - coding["v1"]) / total["v2"],
        }
        log(f"speed {kbps:g} kbps: {json.dumps(speed[f'{kbps:g}'])}")

    chosen = models[CHOSEN]
    tensors = chosen.tensors()
    model_bytes = sum(t.numel() * t.element_size() for t in tensors.values())
    saved = None
    if model_bytes < 1_000_000:
        saved = out / "entropy_model.safetensors"
        save_weights_safetensors(
            saved, tensors, {META_KEY: chosen.metadata(), "fitted_for": str(Path(args.checkpoint).name)}
        )
    result = {
        "checkpoint": os.path.relpath(args.checkpoint, ROOT),
        "list": os.path.relpath(args.list, ROOT),
        "train_clips": len(train),
        "train_hours": sum(map(len, train)) / sr / 3600,
        "tune_clips": len(tune),
        "tune_seconds": tune_seconds,
        "tune_frames": frames,
        "default_block_frames": bs.DEFAULT_BLOCK_FRAMES,
        "chosen_contexts": CHOSEN,
        "entropy_model_id": chosen.hex_id,
        "entropy_model_bytes": model_bytes,
        "entropy_model_file": os.path.relpath(saved, ROOT) if saved else None,
        "model_sizes_bytes": {
            str(m): sum(t.numel() * t.element_size() for t in em.tensors().values()) for m, em in models.items()
        },
        "rates": per_rate,
        "speed_one_thread": speed,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "command": " ".join([Path(sys.executable).name] + sys.argv),
    }
    (out / "entropy_bits.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "README.md").write_text(readme(result))
    log(f"wrote {out / 'README.md'}")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def readme(r) -> str:
    rates = r["rates"]
    lines = [
        "# Entropy coding: bits spent with and without it",
        "",
        "`scripts/entropy_bits.py` (its command: `" + r["command"] + "`). The shipped model "
        f"(`{r['checkpoint']}`) coded the {r['train_clips']} clips of the train list ({r['train_hours']:.2f} h) at "
        "each rate; entropy models (`telucodec.coding.entropy`) were fitted on those codes and measured on all "
        f"{r['tune_clips']} clips of the tune list ({r['tune_seconds'] / 60:.1f} min, {r['tune_frames']} frames), "
        "speakers in no training data. Every tune clip was written as a version 2 `.tlc` and read back: the codes "
        "came back exactly.",
        "",
        f"## Bits per second (contexts = {r['chosen_contexts']}, blocks of {r['default_block_frames']} frames)",
        "",
        "| rate | v1 file | v2 file | saved | v1 payload | v2 payload | ideal (model) | bits/code v1 | bits/code v2 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kbps, row in rates.items():
        c = row[f"contexts_{r['chosen_contexts']}"]
        lines.append(
            f"| {kbps} kbps | {row['v1_bps']:.0f} | {c['bps']:.0f} | {100 * (1 - c['bps'] / row['v1_bps']):.1f} % "
            f"| {row['v1_payload_bps']:.0f} | {c['payload_bps']:.0f} | {c['ideal_bps']:.0f} "
            f"| {row['v1_bits_per_code']:.0f} | {c['bits_per_code']:.2f} |"
        )
    lines += [
        "",
        (
            "File figures include each file's header and CRC (32 bytes in v1, 44 in v2) over clips of "
            f'{r["tune_seconds"] / r["tune_clips"]:.1f} s on average; payload figures leave them out. "Ideal" is the '
            "model's information content of the codes, what a perfect coder would spend; the rest of the payload is "
            "the blocks' word counts and the range coder's last word."
        ),
        "",
        "## Per-stage priors or priors conditioned on the previous stage's code",
        "",
        (
            "Bits per code on the tune list (fitted on the train list; the fit data's own figure in brackets), by the "
            "number of context classes of the previous stage's code (1 = one prior per stage), with the tables' size:"
        ),
        "",
        "| contexts | size | " + " | ".join(f"{k} kbps" for k in rates) + " |",
        "|---|---|" + "---|" * len(rates),
    ]
    for m, size in r["model_sizes_bytes"].items():
        cells = [
            f"{rates[k][f'contexts_{m}']['bits_per_code']:.3f} ({rates[k][f'contexts_{m}']['fit_bits_per_code']:.3f})"
            for k in rates
        ]
        lines.append(f"| {m} | {size / 1000:.0f} kB | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"{r['chosen_contexts']} contexts is the default (`python -m telucodec fit-entropy --contexts`).",
        "",
        "## Block size",
        "",
        (
            "Payload bits per second (contexts = 16) by frames per block: each block costs a 16-bit word count and the "
            "range coder's flush; smaller blocks lose less of a cut file and wait less in a live stream."
        ),
        "",
        "| block frames | " + " | ".join(f"{k} kbps" for k in rates) + " |",
        "|---|" + "---|" * len(rates),
    ]
    for b in next(iter(rates.values()))["block_frames_payload_bps"]:
        lines.append(f"| {b} | " + " | ".join(f"{rates[k]['block_frames_payload_bps'][b]:.0f}" for k in rates) + " |")
    lines += [
        "",
        "## Speed (one thread, the same run, alternating clip by clip)",
        "",
        (
            "Encode + write + read + decode of every tune clip, x real time; and the `.tlc` packing and unpacking alone "
            "(version 2 unpacking also re-encodes each block to check it is canonical):"
        ),
        "",
        "| rate | v1 total | v2 total | v1 pack+unpack | v2 pack+unpack | entropy coding's share of v2 time |",
        "|---|---|---|---|---|---|",
    ]
    for kbps, s in r["speed_one_thread"].items():
        lines.append(
            f"| {kbps} kbps | {s['x_real_time_v1']:.1f} | {s['x_real_time_v2']:.1f} "
            f"| {s['pack_unpack_x_real_time_v1']:.0f} | {s['pack_unpack_x_real_time_v2']:.0f} "
            f"| {100 * s['entropy_share_of_v2_time']:.1f} % |"
        )
    lines += [
        "",
        (
            f"Measured on a shared machine ({r['cpu_count']} cores, other jobs running): the totals move with the load; "
            "the comparison within a row is fair (same run, interleaved)."
        ),
        "",
        "## The fitted model",
        "",
        f"Entropy model id `{r['entropy_model_id']}`, {r['entropy_model_bytes'] / 1000:.0f} kB of tables. "
        + (
            f"Its tables alone are in `{r['entropy_model_file']}` (attach them with "
            "`model.entropy = EntropyModel.from_tensors(*load_weights_safetensors(path))`). "
            if r["entropy_model_file"]
            else ""
        )
        + "It is not written into `results/pretrained/`: `python -m telucodec fit-entropy OUT.safetensors "
        "--data_list results/speakers/lists.tsv --data_root ../shared/data --no_corpus` makes a model file that "
        "carries it.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
