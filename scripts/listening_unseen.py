"""Listening samples of voices no codec here trained or was tuned on, for chapter 15 and the model card.

    python scripts/listening_unseen.py --data_root ../shared/data

The first test-list clip (results/speakers/lists.tsv) of each Common Voice folder (CC0-1.0: no attribution needed,
and Common Voice asks users not to try to identify speakers), in list order, not chosen by score. The first 6 s
of each, as recorded, coded by the shipped codec at 3 and 6 kbps, by the first shipped codec (one speaker) at
6 kbps, and by Opus at 6 and 8 kbps; written as 16-bit FLAC to results/yardstick/listening/ with samples.json:
each file's bits spent (from the .tlc bytes and Opus's packets) and its scores (the yardstick's score_clip).
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

CORPORA = ("indic_commonvoice_cc0", "multi_commonvoice61_cc0")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data_root", required=True)
    ap.add_argument("--list", default="results/speakers/lists.tsv")
    ap.add_argument("--out", default="results/yardstick/listening")
    ap.add_argument("--seconds", type=float, default=6.0)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from telucodec.coding.inference import ONE_SPEAKER, load
    from telucodec.data.audio_io import write_audio
    from telucodec.data.speakers import load_list, read_list
    from telucodec.evaluation import yardstick as y

    shipped, first = load(), load(ONE_SPEAKER)
    units = [next(u for u in read_list(args.list, "test") if u.corpus == c) for c in CORPORA]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = int(args.seconds * 16000)
    record = {"seconds": args.seconds, "command": "python scripts/listening_unseen.py --data_root ../shared/data"}
    record["clips"] = []
    for u, wav in load_list(units, args.data_root, 16000):
        x = wav[:n]
        name = Path(u.file).stem
        systems = {"original": (x, 0)}
        systems["telucodec-6"] = y.telucodec_round_trip(shipped, x, 6.0)
        systems["telucodec-3"] = y.telucodec_round_trip(shipped, x, 3.0)
        systems["one-speaker-6"] = y.telucodec_round_trip(first, x, 6.0)
        for t in (6.0, 8.0):
            systems[f"opus-{t:g}"] = y.opus_round_trip(x, 16000, t, "audio")
        clip = {"name": name, "file": u.file, "language": u.language, "licence": u.licence, "seconds": len(x) / 16000}
        clip["systems"] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for key, (est, bits) in systems.items():
                write_audio(out / f"{name}_{key}.flac", est, 16000)
                scores = {} if key == "original" else y.score_clip(x, est, 16000)
                clip["systems"][key] = {"kbps_spent": bits / (len(x) / 16000) / 1000, **scores}
        record["clips"].append(clip)
        print(name, {k: round(v.get("pesq_wb", 0), 2) for k, v in clip["systems"].items()})
    (out / "samples.json").write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
