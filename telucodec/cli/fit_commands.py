"""`python -m telucodec fit-envelope` and `fit-entropy`: fit a trained codec's envelope codebooks or entropy model
on its training clips and write the result as a new .safetensors file."""

from __future__ import annotations

from telucodec.cli.usage import UsageError


def add_fit_envelope_parser(sub):
    p = sub.add_parser("fit-envelope", help="add envelope codebooks to a trained codec (telucodec.codec.envelope)")
    p.add_argument("output", help="the .safetensors file to write (the same weights plus the envelope codebooks)")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="the trained codec (default: the shipped model); envelope codebooks it already has are replaced",
    )
    p.add_argument(
        "--data_dir", default=None, help="folder of speech the codec trained on (its training split is used)"
    )
    p.add_argument("--no_corpus", action="store_true", help="do not add the embedded corpus's training split")
    p.add_argument(
        "--data_list",
        default=None,
        help="a speaker list (results/speakers/lists.tsv): fit on its "
        "'train' clips (with --data_root), never its tune or test speakers",
    )
    p.add_argument("--data_root", default=None, help="the folder the --data_list paths are relative to")
    p.add_argument(
        "--val_fraction",
        type=float,
        default=0.25,
        help="fraction of each folder's files held out: the value the codec trained with, so that the codebooks "
        "never see its validation files (the shipped model's 0.25; train's default is 0.1)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--compact",
        action="store_true",
        help="an inference export: half-precision weights, no training-only statistics, about half the file "
        "(telucodec.coding.inference.export_safetensors); a compact checkpoint stays compact",
    )
    return p


def _check_fit_data(args):
    """The data options fit-envelope and fit-entropy share: one-line errors for what cannot work."""
    if args.no_corpus and args.data_dir is None and args.data_list is None:
        raise UsageError("nothing to fit on: give --data_dir or --data_list, or drop --no_corpus")
    if args.data_list and not args.data_root:
        raise UsageError("--data_list needs --data_root, the folder its paths are relative to")
    if not 0 < args.val_fraction < 1:
        raise UsageError(f"--val_fraction must be between 0 and 1, got {args.val_fraction}")


def _fit_clips(args, sample_rate: int) -> list:
    """The training clips a codebook fit may see: the embedded corpus's and --data_dir's training splits (split
    by file as the codec trained), and a speaker list's "train" clips."""
    from telucodec.cli.shipped import data_spec
    from telucodec.data.folders import load_dataset

    spec = data_spec(args.val_fraction)
    clips = ([] if args.no_corpus else list(load_dataset(None, spec, "train"))) + (
        list(load_dataset(args.data_dir, spec, "train")) if args.data_dir else []
    )
    if args.data_list:
        from telucodec.data.speakers import load_list, read_list

        clips += [w for _, w in load_list(read_list(args.data_list, "train"), args.data_root, sample_rate)]
    return clips


def cmd_fit_envelope(args):
    import json
    import time

    from telucodec.coding.inference import export_safetensors, load, with_envelope, without_envelope

    _check_fit_data(args)
    loaded = load(args.checkpoint)
    model = without_envelope(loaded)
    clips = _fit_clips(args, model.sample_rate)
    t0 = time.perf_counter()
    try:
        enveloped, report = with_envelope(model, clips, seed=args.seed)
    except ValueError as exc:  # too little speech for the codebooks, a codec that cannot carry them
        raise UsageError(str(exc)) from None
    report["fit_seconds"] = round(time.perf_counter() - t0, 1)
    # keep what the codec's own export recorded (recipe, command, steps); its config and checksum are rewritten
    carried = {k: v for k, v in loaded.metadata.items() if k not in ("telucodec_sha256", "envelope_fit", "stored_as")}
    compact = args.compact or loaded.metadata.get("stored_as") == "compact"
    export_safetensors(enveloped, args.output, {**carried, "envelope_fit": json.dumps(report)}, compact=compact)
    print(
        f"{model.source} + envelope codebooks fitted on {len(clips)} clips ({report['vectors']} envelope vectors: every 20 ms frame at 3 loudness levels) in "
        f"{report['fit_seconds']:.0f} s -> {args.output}"
    )


def add_fit_entropy_parser(sub):
    p = sub.add_parser(
        "fit-entropy", help="fit the entropy model that makes .tlc files smaller (telucodec.coding.entropy)"
    )
    p.add_argument("output", help="the .safetensors file to write (the same codec plus its entropy model)")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="the trained codec (default: the shipped model); an entropy model it already has is replaced",
    )
    p.add_argument(
        "--data_dir", default=None, help="folder of speech the codec trained on (its training split is used)"
    )
    p.add_argument("--no_corpus", action="store_true", help="do not add the embedded corpus's training split")
    p.add_argument(
        "--data_list",
        default=None,
        help="a speaker list (results/speakers/lists.tsv): fit on its "
        "'train' clips (with --data_root), never its tune or test speakers",
    )
    p.add_argument("--data_root", default=None, help="the folder the --data_list paths are relative to")
    p.add_argument(
        "--val_fraction",
        type=float,
        default=0.25,
        help="fraction of each folder's files held out, as for fit-envelope (the shipped model's 0.25)",
    )
    p.add_argument(
        "--contexts",
        type=int,
        default=16,
        help="context classes of the previous stage's code (1: one prior per stage; default 16, which measured better)",
    )
    p.add_argument(
        "--compact",
        action="store_true",
        help="an inference export: half-precision weights, no training-only statistics, about half the file "
        "(telucodec.coding.inference.export_safetensors); a compact checkpoint stays compact",
    )
    return p


def cmd_fit_entropy(args):
    import time

    from telucodec.coding.entropy import META_KEY
    from telucodec.coding.entropy_fit import fit_on_clips
    from telucodec.coding.inference import export_safetensors, load

    _check_fit_data(args)
    if not 1 <= args.contexts <= 256:
        raise UsageError(f"--contexts must be between 1 and 256, got {args.contexts}")
    model = load(args.checkpoint)
    clips = _fit_clips(args, model.sample_rate)
    t0 = time.perf_counter()
    try:
        model.entropy = fit_on_clips(model, clips, contexts=args.contexts)
    except ValueError as exc:  # a codebook too small to entropy-code, no frames
        raise UsageError(str(exc)) from None
    model.entropy.report["clips"] = len(clips)
    model.entropy.report["fit_seconds"] = round(time.perf_counter() - t0, 1)
    carried = {k: v for k, v in model.metadata.items() if k not in ("telucodec_sha256", META_KEY, "stored_as")}
    compact = args.compact or model.metadata.get("stored_as") == "compact"
    export_safetensors(model, args.output, carried, compact=compact)
    bits = ", ".join(f"{b:.2f} at n_q={n}" for n, b in model.entropy.report["fit_bits_per_code"].items())
    print(
        f"{model.source} + entropy model {model.entropy.hex_id} ({args.contexts} contexts) fitted on {len(clips)} "
        f"clips in {model.entropy.report['fit_seconds']:.0f} s: {bits} bits per code on them -> {args.output}"
    )
