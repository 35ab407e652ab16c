"""The yardstick on a speaker list: TeluCodec against Opus at equal bits, at four levels (telucodec.evaluation.yardstick).

    python scripts/yardstick.py --checkpoint results/pretrained/telucodec.safetensors \
        --data_root ../shared/data --which test --out results/yardstick/shipped-test
    python scripts/yardstick.py --choose_application --data_root ../shared/data    # Opus voip/audio, tune list

Writes OUT.json (every clip's scores) and OUT.md (the tables and the paired verdicts). On two cores, score the
levels in two processes and merge them:

    python scripts/yardstick.py ... --levels recorded --out A & python scripts/yardstick.py ... --levels -35,-25,-15 --out B
    python scripts/yardstick.py --merge A.json B.json --out OUT
"""

import argparse
import json
import sys
import time
from pathlib import Path

from telucodec.evaluation import yardstick as y
from telucodec.evaluation import yardstick_report as yr

APPLICATION_FILE = Path("results/yardstick/opus_application.json")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="default: the shipped model")
    ap.add_argument("--list", default="results/speakers/lists.tsv")
    ap.add_argument("--data_root", default=None)
    ap.add_argument("--which", default="test", choices=["test", "tune", "dev"])
    ap.add_argument("--per_speaker", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--levels", default="recorded,-35,-25,-15")
    ap.add_argument(
        "--other",
        action="append",
        default=[],
        metavar="NAME=CHECKPOINT@KBPS",
        help="another codec scored beside (an earlier model); repeatable",
    )
    ap.add_argument("--merge", nargs="+", default=None, metavar="PART.json", help="merge runs of other levels")
    ap.add_argument("--out", default=None)
    ap.add_argument("--choose_application", action="store_true", help="pick Opus's application on the tune list")
    args = ap.parse_args()
    t0 = time.time()
    if args.merge:
        result = yr.merge([json.loads(Path(p).read_text()) for p in args.merge])
        write(result, args.out)
        return
    if not args.data_root:
        ap.error("--data_root is required")
    if args.choose_application:
        clips = y.test_clips(args.list, args.data_root, "tune", 1, args.seconds)
        choice = y.choose_application(clips)
        choice.update(clips=len(clips), list="tune", targets_kbps=[6, 8])
        APPLICATION_FILE.parent.mkdir(parents=True, exist_ok=True)
        APPLICATION_FILE.write_text(json.dumps(choice, indent=1) + "\n")
        print(choice)
        return
    import telucodec

    model = telucodec.load(args.checkpoint)
    application = json.loads(APPLICATION_FILE.read_text())["application"]
    levels = tuple(None if v == "recorded" else float(v) for v in args.levels.split(","))
    per = 1 if args.which == "dev" else args.per_speaker
    clips = y.test_clips(args.list, args.data_root, args.which, per if args.which != "dev" else 100, args.seconds)
    print(f"{len(clips)} clips of the {args.which} list", file=sys.stderr)
    others = {}
    for spec in args.other:
        name, rest = spec.split("=", 1)
        path, kbps = rest.rsplit("@", 1)
        others[name] = (telucodec.load(path), float(kbps))
    result = y.run(
        model,
        clips,
        levels=levels,
        application=application,
        others=others,
        progress=lambda level, i: print(
            f"{y.level_name(level)}: clip {i + 1}/{len(clips)} ({time.time() - t0:.0f} s)", file=sys.stderr
        ),
    )
    result.update(
        checkpoint=args.checkpoint or "shipped",
        list=args.list,
        which=args.which,
        seconds_per_clip=args.seconds,
        wall_seconds=time.time() - t0,
    )
    write(result, args.out)


def write(result: dict, out: str):
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(yr.markdown(result))
    print(yr.markdown(result))


if __name__ == "__main__":
    main()
