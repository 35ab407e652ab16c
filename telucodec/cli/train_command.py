"""`python -m telucodec train`: its options, their checks, and the call to telucodec.training.loop.fit."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

from telucodec.cli.usage import UsageError
from telucodec.config import PRESETS


def add_train_parser(sub):
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
    p.add_argument(
        "--with_corpus",
        action="store_true",
        help="with --data_list: add the embedded eSpeak NG corpus's training split to the train list's clips",
    )
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
        raise UsageError("--data_list needs --data_root, the folder its paths are relative to")
    train = [w for _, w in load_list(read_list(args.data_list, "train"), args.data_root, sample_rate)]
    tune, seen = [], set()
    for u in read_list(args.data_list, "tune"):
        if (u.corpus, u.speaker) not in seen:
            seen.add((u.corpus, u.speaker))
            tune.append(u)
    val = [w for _, w in load_list(tune, args.data_root, sample_rate)] if tune else train[:8]
    if args.with_corpus:
        from telucodec.data.folders import load_dataset, spec_for

        train += list(load_dataset(None, spec_for(args.recipe_codec, args.recipe_train), "train"))
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
        raise UsageError(str(exc)) from None
    for name in (
        "batch_size",
        "num_epochs",
        "steps",
        "checkpoint_every",
        "keep_every",
    ):  # would crash or silently train nothing
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be a positive integer, got {value}")
    if args.learning_rate is not None and not 0 < args.learning_rate < float("inf"):
        raise UsageError(f"--learning_rate must be a positive number, got {args.learning_rate}")
    if args.seed is not None and not 0 <= args.seed < 2**32:
        raise UsageError(f"--seed must be between 0 and 2**32 - 1, got {args.seed}")
    if args.val_fraction is not None and not 0 < args.val_fraction < 1:
        raise UsageError(f"--val_fraction must be between 0 and 1, got {args.val_fraction}")
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
            raise UsageError(f"--{name} must be 0 or more, got {value}")
        if value is not None:
            changes[name] = value
    if args.adversarial_loss:
        changes["adversarial_loss"] = args.adversarial_loss
    for name in ("adversarial_weight", "feature_weight"):
        value = getattr(args, name)
        if value is not None and not 0 <= value < 1:
            raise UsageError(f"--{name} must be in [0, 1) (a share of the output gradient), got {value}")
        if value is not None:
            changes[name] = value
    if sum(changes.get(k, getattr(r.train, k)) for k in ("adversarial_weight", "feature_weight")) >= 1:
        raise UsageError("--adversarial_weight + --feature_weight must leave a share for reconstruction (sum < 1)")
    if args.disc_learning_rate is not None:
        if not 0 < args.disc_learning_rate < float("inf"):
            raise UsageError(f"--disc_learning_rate must be a positive number, got {args.disc_learning_rate}")
        changes["disc_learning_rate"] = args.disc_learning_rate
    if args.discriminators is not None:
        from telucodec.training.discriminators import KINDS

        kinds = tuple(k.strip() for k in args.discriminators.split(",") if k.strip())
        bad = [k for k in kinds if k not in KINDS]
        if bad or not kinds:
            raise UsageError(
                f"--discriminators: unknown {', '.join(bad) or '(none given)'}; choose from {', '.join(KINDS)}"
            )
        changes["discriminators"] = kinds
    if args.init_from is not None and not Path(args.init_from).exists():
        raise UsageError(f"--init_from {args.init_from}: no such file or folder")
    tcfg = replace(r.train, **changes)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" and tcfg.amp != "off" and args.amp is None:
        tcfg = replace(tcfg, amp="off")  # the preset's bf16 is meant for GPUs
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA GPU is available")
    clips = None
    if args.with_corpus and not args.data_list:
        raise UsageError(
            "--with_corpus adds the embedded corpus to a --data_list run (without --data_list it is the default)"
        )
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
