"""`python -m telucodec bench quality|speed`: the command line of the benchmarks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from telucodec.bench.common import DEFAULT_OUT, _command
from telucodec.bench.quality import quality, quality_markdown
from telucodec.bench.speed import speed, speed_markdown


# ================================================================================================= CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m telucodec bench", description="Quality against classical codecs, and speed against EnCodec."
    )
    sub = p.add_subparsers(dest="what", required=True)
    q = sub.add_parser("quality", help="PESQ-WB, STOI, SI-SNR, mel distance vs bitrate spent")
    q.add_argument("--data_dir", default=None, help="folder of held-out speech (default: embedded corpus, val split)")
    q.add_argument("--checkpoint", default=None, help="TeluCodec checkpoint (default: the shipped one)")
    q.add_argument("--max_clips", type=int, default=50)
    q.add_argument("--max_seconds", type=float, default=10.0, help="cut each clip to this length")
    q.add_argument(
        "--split",
        choices=("all", "val", "train"),
        default=None,
        help="which files to score (default: val for the embedded corpus, all for --data_dir)",
    )
    q.add_argument(
        "--val_fraction",
        type=float,
        default=None,
        help="the held-out fraction the model was trained with (the shipped model: 0.25)",
    )
    q.add_argument("--visqol", action="store_true", help="also score ViSQOL v3 (speech mode; ~2 s per pair)")
    s = sub.add_parser("speed", help="encode/decode real-time factors and train-step time vs EnCodec")
    s.add_argument("--checkpoint", default=None, help="TeluCodec checkpoint (its architecture is timed)")
    s.add_argument(
        "--preset",
        default=None,
        help="architecture(s) to time when no checkpoint is given, e.g. full or full,small,ci "
        "(default full; ci with --quick)",
    )
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
        res = quality(
            args.data_dir,
            args.checkpoint,
            args.max_clips,
            args.out,
            max_seconds=args.max_seconds,
            split=args.split,
            quick=args.quick,
            command=command,
            progress=progress,
            visqol=args.visqol,
            val_fraction=args.val_fraction,
        )
        print(quality_markdown(res))
        print(f"wrote {Path(args.out) / 'quality.md'}, quality.json, quality.png")
    else:
        res = speed(
            args.seconds,
            args.repeats,
            args.devices,
            args.checkpoint,
            args.preset,
            args.out,
            include_encodec=not args.no_encodec,
            quick=args.quick,
            command=command,
            progress=progress,
        )
        print(speed_markdown(res))
        print(f"wrote {Path(args.out) / 'speed.md'}, speed.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
