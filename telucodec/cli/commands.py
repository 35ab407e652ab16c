"""`python -m telucodec {train,encode,decode,fit-envelope,fit-entropy,demo,bench,experiments}`. User errors print one line and exit 2."""

from __future__ import annotations

import argparse
import sys
import warnings

from telucodec.cli.coding_commands import add_decode_parser, add_encode_parser, cmd_decode, cmd_encode
from telucodec.cli.fit_commands import (
    add_fit_entropy_parser,
    add_fit_envelope_parser,
    cmd_fit_entropy,
    cmd_fit_envelope,
)
from telucodec.cli.train_command import add_train_parser, cmd_train
from telucodec.cli.usage import UsageError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m telucodec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    add_encode_parser(sub)
    add_decode_parser(sub)
    add_fit_envelope_parser(sub)
    add_fit_entropy_parser(sub)
    b = sub.add_parser("bench", help="quality or speed benchmarks (see book/benchmarks.md)", add_help=False)
    b.add_argument("rest", nargs=argparse.REMAINDER)
    e = sub.add_parser("experiments", help="the GPU ablation run (see scripts/gpu_run.sh)", add_help=False)
    e.add_argument("rest", nargs=argparse.REMAINDER)
    d = sub.add_parser(
        "demo", help="the shipped codec beside Opus, AMR-NB and Codec2 on a Telugu sentence", add_help=False
    )
    d.add_argument("rest", nargs=argparse.REMAINDER)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("bench", "experiments", "demo"):  # they parse their own options
        args = argparse.Namespace(command=argv[0], rest=argv[1:])
    else:
        args = parser.parse_args(argv)

    from telucodec.errors import BadAudioWarning, TeluCodecError

    warnings.simplefilter("always", BadAudioWarning)
    warnings.showwarning = _one_line_warning
    try:
        if args.command == "train":
            cmd_train(args)
        elif args.command == "encode":
            cmd_encode(args)
        elif args.command == "decode":
            cmd_decode(args)
        elif args.command == "fit-envelope":
            cmd_fit_envelope(args)
        elif args.command == "fit-entropy":
            cmd_fit_entropy(args)
        elif args.command == "bench":
            from telucodec import bench

            return bench.main(args.rest) or 0
        elif args.command == "experiments":
            from telucodec.training import experiments

            return experiments.main(args.rest) or 0
        elif args.command == "demo":
            from telucodec.cli import demo

            return demo.main(args.rest) or 0
    except (TeluCodecError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)
