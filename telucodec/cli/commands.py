"""`python -m telucodec {train,encode,decode,demo,bench,experiments}`. User errors print one line and exit 2."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from dataclasses import replace
from pathlib import Path

from telucodec.config import PRESETS


def _train_parser(sub):
    p = sub.add_parser("train", help="train a codec (the story's command line works unchanged)")
    p.add_argument("--data_dir", default=None, help="folder tree of wav/flac/ogg/mp3 (default: embedded corpus)")
    p.add_argument("--checkpoint_dir", default="checkpoints")
    p.add_argument("--experiment_name", default="telucodec")
    p.add_argument(
        "--preset",
        default=None,
        choices=list(PRESETS),
        help="model size (default: ci with --recipe story, cpu-deep with voices, cpu with the others)",
    )
    p.add_argument(
        "--fixes",
        default=None,
        help="all, none, a comma list of fix names, or all-<name> (default: all; "
        "the voices recipe: its quantizer hygiene, telucodec.training.recipes.VOICES_FIXES)",
    )
    p.add_argument(
        "--recipe",
        default="story",
        choices=["story", "working", "adversarial", "voices"],
        help="story: the book's codec with --fixes; working: the recipe that learns; adversarial: "
        "working plus discriminators; voices: for unseen voices, a frame-rate "
        "decoder and levels +-20 dB (telucodec.training.recipes)",
    )
    p.add_argument(
        "--init_from",
        default=None,
        help="start from a trained codec's weights (.pt, .safetensors or "
        "a run folder) with a fresh optimizer: a fine-tune",
    )
    p.add_argument("--discriminators", default=None, help="comma list of msstft, mpd (adversarial recipe)")
    p.add_argument("--adversarial_loss", choices=["hinge", "lsgan"])
    p.add_argument("--disc_start_step", type=int, help="the discriminators start training at this step")
    p.add_argument("--disc_warmup_steps", type=int, help="...and the codec gets their gradient this many later")
    p.add_argument("--adversarial_weight", type=float, help="share of the output gradient (with the balancer)")
    p.add_argument("--feature_weight", type=float, help="the same for the feature-matching loss")
    p.add_argument("--disc_learning_rate", type=float, help="default: --learning_rate")
    p.add_argument("--without", default="", help="comma list of working-recipe ingredients to turn off")
    p.add_argument("--with", dest="with_", default="", help="comma list of ingredients to turn on as well")
    p.add_argument(
        "--extra_data_dir",
        default=None,
        help="a second folder of speech added to --data_dir (or to the embedded corpus), split by file the same way",
    )
    p.add_argument(
        "--data_list",
        default=None,
        help="a speaker list (results/speakers/lists.tsv): train on its "
        "'train' clips, validate on its 'tune' speakers (paths relative to --data_root)",
    )
    p.add_argument("--data_root", default=None, help="the folder the --data_list paths are relative to")
    p.add_argument("--val_fraction", type=float, help="fraction of files held out for validation")
    p.add_argument("--keep_every", type=int, help="keep a weights snapshot every N steps (quality curves)")
    p.add_argument("--batch_size", type=int)
    p.add_argument("--num_epochs", type=int)
    p.add_argument("--steps", type=int, help="optimizer steps (overrides --num_epochs)")
    p.add_argument("--learning_rate", type=float)
    p.add_argument("--optimizer", choices=["adamw", "adam"], help="adamw with warm-up (default) or plain adam")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--amp", choices=["bf16", "fp16", "off"], help="mixed precision (default: the preset's)")
    p.add_argument("--resume", action="store_true", help="continue from the newest good checkpoint")
    p.add_argument("--checkpoint_every", type=int)
    p.add_argument("--on_nonfinite", choices=["stop", "skip"], help="stop (default) or skip NaN/inf steps")
    p.add_argument("--seed", type=int)
    p.add_argument("--inject_nonfinite_at", type=int, help=argparse.SUPPRESS)  # for the fault tests
    return p


def _listed_clips(args, sample_rate: int):
    """(train, validation) clips from a speaker list (telucodec.data.speakers): the "train" list, and the first
    clip of each "tune" speaker for the per-epoch diagnostics; plus --extra_data_dir's folder if given."""
    from telucodec.data.speakers import load_list, read_list

    if not args.data_root:
        raise _Usage("--data_list needs --data_root, the folder its paths are relative to")
    train = [w for _, w in load_list(read_list(args.data_list, "train"), args.data_root, sample_rate)]
    tune, seen = [], set()
    for u in read_list(args.data_list, "tune"):
        if (u.corpus, u.speaker) not in seen:
            seen.add((u.corpus, u.speaker))
            tune.append(u)
    val = [w for _, w in load_list(tune, args.data_root, sample_rate)] if tune else train[:8]
    if args.extra_data_dir:
        from telucodec.data.folders import load_dataset, spec_for

        spec = spec_for(args.recipe_codec, args.recipe_train)
        train += list(load_dataset(args.extra_data_dir, spec, "train"))
    return train, val


def cmd_train(args):
    import torch

    from telucodec.fixes import Fixes
    from telucodec.training.loop import fit
    from telucodec.training.recipes import recipe

    args.preset = args.preset or {"story": "ci", "voices": "cpu-deep"}.get(args.recipe, "cpu")
    without = tuple(w.strip() for w in args.without.split(",") if w.strip())
    with_ = tuple(w.strip() for w in args.with_.split(",") if w.strip())
    try:
        fixes = Fixes.parse(args.fixes) if args.fixes else (None if args.recipe == "voices" else Fixes.all())
        r = recipe(args.recipe, args.preset, without, fixes, with_)
    except ValueError as exc:
        raise _Usage(str(exc)) from None
    for name in (
        "batch_size",
        "num_epochs",
        "steps",
        "checkpoint_every",
        "keep_every",
    ):  # would crash or silently train nothing
        value = getattr(args, name)
        if value is not None and value < 1:
            raise _Usage(f"--{name} must be a positive integer, got {value}")
    if args.learning_rate is not None and not 0 < args.learning_rate < float("inf"):
        raise _Usage(f"--learning_rate must be a positive number, got {args.learning_rate}")
    if args.seed is not None and not 0 <= args.seed < 2**32:
        raise _Usage(f"--seed must be between 0 and 2**32 - 1, got {args.seed}")
    if args.val_fraction is not None and not 0 < args.val_fraction < 1:
        raise _Usage(f"--val_fraction must be between 0 and 1, got {args.val_fraction}")
    changes = {
        k: getattr(args, k)
        for k in (
            "batch_size",
            "num_epochs",
            "learning_rate",
            "optimizer",
            "amp",
            "checkpoint_every",
            "on_nonfinite",
            "seed",
            "val_fraction",
            "keep_every",
        )
        if getattr(args, k) is not None
    }
    for name in ("disc_start_step", "disc_warmup_steps"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise _Usage(f"--{name} must be 0 or more, got {value}")
        if value is not None:
            changes[name] = value
    if args.adversarial_loss:
        changes["adversarial_loss"] = args.adversarial_loss
    for name in ("adversarial_weight", "feature_weight"):
        value = getattr(args, name)
        if value is not None and not 0 <= value < 1:
            raise _Usage(f"--{name} must be in [0, 1) (a share of the output gradient), got {value}")
        if value is not None:
            changes[name] = value
    if sum(changes.get(k, getattr(r.train, k)) for k in ("adversarial_weight", "feature_weight")) >= 1:
        raise _Usage("--adversarial_weight + --feature_weight must leave a share for reconstruction (sum < 1)")
    if args.disc_learning_rate is not None:
        if not 0 < args.disc_learning_rate < float("inf"):
            raise _Usage(f"--disc_learning_rate must be a positive number, got {args.disc_learning_rate}")
        changes["disc_learning_rate"] = args.disc_learning_rate
    if args.discriminators is not None:
        from telucodec.training.discriminators import KINDS

        kinds = tuple(k.strip() for k in args.discriminators.split(",") if k.strip())
        bad = [k for k in kinds if k not in KINDS]
        if bad or not kinds:
            raise _Usage(
                f"--discriminators: unknown {', '.join(bad) or '(none given)'}; choose from {', '.join(KINDS)}"
            )
        changes["discriminators"] = kinds
    if args.init_from is not None and not Path(args.init_from).exists():
        raise _Usage(f"--init_from {args.init_from}: no such file or folder")
    tcfg = replace(r.train, **changes)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" and tcfg.amp != "off" and args.amp is None:
        tcfg = replace(tcfg, amp="off")  # the preset's bf16 is meant for GPUs
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise _Usage("--device cuda was asked for but no CUDA GPU is available")
    clips = None
    if args.data_list:
        args.recipe_codec, args.recipe_train = r.codec, tcfg
        clips = _listed_clips(args, r.codec.sample_rate)
    elif args.extra_data_dir:
        from telucodec.data.folders import load_dataset, spec_for

        spec = spec_for(r.codec, tcfg)
        clips = tuple(
            list(load_dataset(args.data_dir, spec, split)) + list(load_dataset(args.extra_data_dir, spec, split))
            for split in ("train", "val")
        )
    result = fit(
        args.preset,
        r.fixes,
        clips,
        codec_config=r.codec,
        train_config=tcfg,
        steps=args.steps,
        data_dir=args.data_dir,
        checkpoint_dir=args.checkpoint_dir,
        experiment_name=args.experiment_name,
        device=device,
        resume=args.resume,
        inject_nonfinite_at=args.inject_nonfinite_at,
        init_from=args.init_from,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done: {result.step} steps in {result.seconds:.1f} s; checkpoints in {result.run_dir}")


def _encode_parser(sub):
    p = sub.add_parser("encode", help="encode audio to a .tlc bitstream")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--checkpoint", default=None, help="checkpoint file or folder (default: the shipped model)")
    p.add_argument("--kbps", type=float, default=6.0, choices=[1.5, 3.0, 6.0])
    p.add_argument(
        "--no_entropy",
        action="store_true",
        help="write a plain version 1 .tlc even when the model "
        "has an entropy model (by default its codes are entropy-coded: version 2, smaller)",
    )
    return p


def cmd_encode(args):
    """Streams: the audio is read in blocks, coded a chunk at a time (telucodec.coding.streaming; the codes are those of
    the whole file at once) and written to the .tlc as it goes, so memory does not grow with the input."""
    from telucodec.coding import bitstream
    from telucodec.coding.inference import load
    from telucodec.coding.streaming import AudioBlockReader, StreamEncoder, chunk_frames

    model = load(args.checkpoint)
    reader = AudioBlockReader(args.input, model.sample_rate)  # checks the file before anything is written
    chunk = chunk_frames(model)
    encoder = StreamEncoder(model, args.kbps, min_frames=chunk, max_frames=chunk)
    entropy = (
        model.entropy
        if not args.no_entropy and model.entropy is not None and model.entropy.covers(encoder.n_q)
        else None
    )  # version 2 (entropy-coded) when it can
    with (
        reader,
        bitstream.TlcWriter(
            args.output,
            n_q=encoder.n_q,
            sample_rate=model.sample_rate,
            codebook_size=model.config.codebook_size,
            hop_length=model.config.hop_length,
            envelope_stages=model.codec.envelope_stages(encoder.n_q),
            entropy=entropy,
        ) as writer,
    ):
        for block in reader:
            writer.write(encoder.push(block))
        writer.write(encoder.flush())
        writer.finish(encoder.samples_in)
    seconds = encoder.samples_in / model.sample_rate
    size = Path(args.output).stat().st_size
    coded = ", entropy-coded" if entropy is not None else ""
    print(
        f"{args.input}: {seconds:.2f} s -> {args.output}: {size} bytes "
        f"({size * 8 / seconds / 1000:.2f} kbps with header{coded})"
    )


def _decode_parser(sub):
    p = sub.add_parser("decode", help="decode a .tlc bitstream to a wav file")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--checkpoint", default=None, help="the checkpoint that encoded it (default: the shipped model)")
    return p


def cmd_decode(args):
    """Streams: the .tlc is read a block of frames at a time, decoded a chunk at a time (telucodec.coding.streaming; the
    samples are those of the whole file at once) and written as it goes. A .tlc that ends early is decoded as far
    as it goes, with a warning naming it."""
    from telucodec.coding import bitstream
    from telucodec.coding.inference import load
    from telucodec.coding.streaming import AudioBlockWriter, StreamDecoder, chunk_frames
    from telucodec.errors import BitstreamError

    model = load(args.checkpoint)  # first: an entropy-coded file is read with its entropy model
    with warnings.catch_warnings(record=True) as truncation:
        warnings.simplefilter("always", bitstream.TruncatedStreamWarning)
        stream = bitstream.TlcReader(args.input, entropy=model.entropy)
    if (stream.sample_rate, stream.codebook_size, stream.hop_length) != (
        model.sample_rate,
        model.config.codebook_size,
        model.config.hop_length,
    ):
        raise BitstreamError(
            f"{args.input} was made by a codec with another sample rate, codebook size or hop "
            f"length than {model.source}"
        )
    theirs, ours = stream.envelope_stages, model.codec.envelope_stages(stream.n_q)
    if theirs != ours:
        raise BitstreamError(
            f"{args.input} carries {theirs} envelope codebooks of its {stream.n_q}, but {model.source} "
            f"reads {ours} at that rate (telucodec.codec.envelope): decode it with the model that encoded it"
        )
    if stream.n_q > model.config.n_q:
        raise BitstreamError(
            f"{args.input} has {stream.n_q} codes per frame; {model.source} has {model.config.n_q} codebooks"
        )
    if stream.num_frames == 0:
        raise BitstreamError(f"{args.input}: holds no frames, there is nothing to decode")
    for w in truncation:  # said once the file is known to be decodable
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    chunk = chunk_frames(model)
    decoder = StreamDecoder(
        model,
        n_q=stream.n_q,
        num_frames=stream.num_frames,
        num_samples=stream.num_samples,
        min_frames=chunk,
        max_frames=chunk,
    )
    with AudioBlockWriter(args.output, model.sample_rate) as writer:
        for codes in stream.blocks(chunk):
            writer.write(decoder.push(codes))
        writer.write(decoder.flush())
        writer.commit()
    print(f"{args.input} -> {args.output}: {writer.num_samples / model.sample_rate:.2f} s at {model.sample_rate} Hz")


def _fit_envelope_parser(sub):
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
    return p


def _check_fit_data(args):
    """The data options fit-envelope and fit-entropy share: one-line errors for what cannot work."""
    if args.no_corpus and args.data_dir is None and args.data_list is None:
        raise _Usage("nothing to fit on: give --data_dir or --data_list, or drop --no_corpus")
    if args.data_list and not args.data_root:
        raise _Usage("--data_list needs --data_root, the folder its paths are relative to")
    if not 0 < args.val_fraction < 1:
        raise _Usage(f"--val_fraction must be between 0 and 1, got {args.val_fraction}")


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
        raise _Usage(str(exc)) from None
    report["fit_seconds"] = round(time.perf_counter() - t0, 1)
    # keep what the codec's own export recorded (recipe, command, steps); its config and checksum are rewritten
    carried = {k: v for k, v in loaded.metadata.items() if k not in ("telucodec_sha256", "envelope_fit")}
    export_safetensors(enveloped, args.output, {**carried, "envelope_fit": json.dumps(report)})
    print(
        f"{model.source} + envelope codebooks fitted on {len(clips)} clips ({report['vectors']} envelope vectors: every 20 ms frame at 3 loudness levels) in "
        f"{report['fit_seconds']:.0f} s -> {args.output}"
    )


def _fit_entropy_parser(sub):
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
    return p


def cmd_fit_entropy(args):
    import time

    from telucodec.coding.entropy import META_KEY, fit_on_clips
    from telucodec.coding.inference import export_safetensors, load

    _check_fit_data(args)
    if not 1 <= args.contexts <= 256:
        raise _Usage(f"--contexts must be between 1 and 256, got {args.contexts}")
    model = load(args.checkpoint)
    clips = _fit_clips(args, model.sample_rate)
    t0 = time.perf_counter()
    try:
        model.entropy = fit_on_clips(model, clips, contexts=args.contexts)
    except ValueError as exc:  # a codebook too small to entropy-code, no frames
        raise _Usage(str(exc)) from None
    model.entropy.report["clips"] = len(clips)
    model.entropy.report["fit_seconds"] = round(time.perf_counter() - t0, 1)
    carried = {k: v for k, v in model.metadata.items() if k not in ("telucodec_sha256", META_KEY)}
    export_safetensors(model, args.output, carried)
    bits = ", ".join(f"{b:.2f} at n_q={n}" for n, b in model.entropy.report["fit_bits_per_code"].items())
    print(
        f"{model.source} + entropy model {model.entropy.hex_id} ({args.contexts} contexts) fitted on {len(clips)} "
        f"clips in {model.entropy.report['fit_seconds']:.0f} s: {bits} bits per code on them -> {args.output}"
    )


class _Usage(Exception):
    pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m telucodec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _encode_parser(sub)
    _decode_parser(sub)
    _fit_envelope_parser(sub)
    _fit_entropy_parser(sub)
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
    except (TeluCodecError, _Usage) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)
