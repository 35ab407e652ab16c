"""`python -m telucodec demo`: hear the shipped codec beside Opus, AMR-NB and Codec2 on a Telugu sentence.

It takes a sentence of real Telugu speech that ships with the repository (`DEMO_SPEECH`: 4 s of a Common Voice
clip, CC0, from the dev list of results/speakers/lists.tsv, which no shipped model trained on), codes it at 1.5,
3 and 6 kbps with the shipped model and with the classical codecs at nearby rates, writes every version as a wav
file (and TeluCodec's .tlc files, whose bytes give its bits spent) and prints PESQ-WB, STOI, ViSQOL, SI-SNR and
mel distance. `held_out_clips` and `demo_clip` are the embedded corpus's held-out sentences, which the book's
chapters use.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

BASELINE_RATES = ("codec2-1200", "codec2-3200", "amrnb-4.75", "opus-6", "opus-8")


def demo_speech():
    """(name, waveform at 16 kHz) of the demo's real Telugu sentence (`DEMO_SPEECH`)."""
    from telucodec.data.audio_io import read_audio
    from telucodec.paths import RESULTS_DIR

    path = RESULTS_DIR / "one-speaker" / "listening" / "common_voice_te_43371564_original.flac"
    return "common_voice_te_43371564 (first 4 s)", read_audio(path, 16000)


def held_out_clips(seconds: float = 6.0) -> list:
    """[(name, waveform)] of the validation-split sentences of the embedded corpus, each at most `seconds`. The
    corpus is one deterministic stream of clips, so its first 1.5 minutes are the first clips of the 12 minutes
    the shipped model trained on, with the same file names, and the split by file name holds them out the same
    way: the shipped model never trained on any of these."""
    from telucodec.cli.shipped import data_spec
    from telucodec.data.folders import load_dataset

    spec = data_spec()
    spec.corpus_minutes = 1.5  # quick to build on a fresh machine; same held-out files
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clips = load_dataset(None, spec, "val")
    return [(str(name), np.asarray(clip[: int(seconds * 16000)], np.float32)) for name, clip in zip(clips.paths, clips)]


def demo_clip(seconds: float = 6.0):
    """(name, waveform) of the longest held-out sentence (`held_out_clips`), at most `seconds`."""
    clips = held_out_clips(seconds=1e9)
    name, clip = clips[int(np.argmax([len(c) for _, c in clips]))]
    return name, clip[: int(seconds * 16000)]


def run(out_dir="telucodec-demo", checkpoint=None, visqol: bool = True, print_fn=print) -> list:
    """Code the demo sentence with every system, write wav files to out_dir and return the table rows."""
    from telucodec.coding.inference import load
    from telucodec.data.audio_io import write_audio
    from telucodec.evaluation import baselines as B
    from telucodec.evaluation.scoring import score

    t0 = time.perf_counter()
    model = load(checkpoint)
    name, x = demo_speech()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_audio(out / "original.wav", x, 16000)
    print_fn(
        f"demo: {name}, {len(x) / 16000:.1f} s of real Telugu speech (Common Voice, CC0; held out of training); "
        f"model: {model.source}"
    )
    systems = []
    for kbps in (1.5, 3.0, 6.0):
        data = model.pack(model.encode(x, 16000, kbps=kbps), len(x))  # the .tlc file `encode` writes
        (out / f"telucodec_{kbps:g}kbps.tlc").write_bytes(data)
        stream = model.unpack(data)
        spent = 8 * len(data) / (len(x) / 16000) / 1000
        decoded = model.decode(stream.codes, stream.num_samples)
        systems.append((f"TeluCodec {kbps:g} kbps", f"telucodec_{kbps:g}kbps", spent, decoded))
    unavailable = B.unavailable_baselines()
    for key in BASELINE_RATES:
        spec = B.BASELINES[key]
        if key in unavailable:
            print_fn(f"demo: {spec.label} skipped ({unavailable[key]})")
            continue
        r = B.round_trip(key, x, 16000)
        systems.append((spec.label, key.replace("-", "_").replace(".", "_"), r.bits_per_second / 1000, r.decoded))
    rows = []
    for label, stem, kbps, y in systems:
        write_audio(out / f"{stem}.wav", np.clip(y, -1, 1), 16000)
        m = score(x, y, 16000, perceptual=True, visqol=visqol)
        rows.append({"system": label, "kbps": kbps, **m, "file": str(out / f"{stem}.wav")})
    print_fn(markdown(rows, visqol))
    print_fn(f"wrote {len(rows) + 1} wav files to {out}/ in {time.perf_counter() - t0:.0f} s")
    return rows


def markdown(rows: list, visqol: bool = True) -> str:
    head = (
        "| system | kbit/s spent | PESQ-WB ↑ | STOI ↑ | "
        + ("ViSQOL ↑ | " if visqol else "")
        + "SI-SNR (dB) ↑ | mel distance ↓ |"
    )
    lines = [head, "|---|---:|---:|---:|" + ("---:|" if visqol else "") + "---:|---:|"]
    for r in rows:
        cells = [r["system"], f"{r['kbps']:.2f}", f"{r['pesq_wb']:.2f}", f"{r['stoi']:.3f}"]
        if visqol:
            cells.append(f"{r['visqol']:.2f}")
        cells += [f"{r['si_snr_db']:.1f}", f"{r['mel_distance']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m telucodec demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", default="telucodec-demo", help="folder for the wav files (default: ./telucodec-demo)")
    ap.add_argument("--checkpoint", default=None, help="a checkpoint instead of the shipped model")
    ap.add_argument("--no-visqol", action="store_true", help="skip ViSQOL (about 3 s per system)")
    args = ap.parse_args(argv)
    run(args.out, args.checkpoint, visqol=not args.no_visqol)
    return 0


if __name__ == "__main__":
    sys.exit(main())
