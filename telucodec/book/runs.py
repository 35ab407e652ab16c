"""The notebooks' cached training runs: the corpus clips they train on, the run cache keyed by what a run executes
(the package's modules a run imports, fingerprinted without docstrings), reconstruction and the chain of fixes."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from telucodec.book.profiles import Profile
from telucodec.config import preset as get_preset
from telucodec.fixes import Fixes
from telucodec.paths import cache_dir

_CLIPS: dict = {}


def corpus_clips(profile: Profile, data_dir=None):
    """(train, val) lists of float32 clips: the embedded Telugu corpus (or data_dir) at the profile's size."""
    key = (profile.preset, str(data_dir))
    if key not in _CLIPS:
        from telucodec.data.folders import load_dataset, spec_for

        spec = spec_for(profile.preset)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _CLIPS[key] = (load_dataset(data_dir, spec, "train"), load_dataset(data_dir, spec, "val"))
    return _CLIPS[key]


def run_modules(start: str = "training.loop") -> list:
    """The package's modules a training run can execute: `start` and everything it imports from the package,
    followed transitively (imports inside functions included), read from the syntax trees."""
    import ast

    pkg = Path(__file__).parents[1]  # the telucodec package folder

    def source(name):
        path = pkg / f"{name.replace('.', '/')}.py"
        return path if path.exists() else pkg / name.replace(".", "/") / "__init__.py"

    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or not source(name).exists():
            continue
        seen.add(name)
        for node in ast.walk(ast.parse(source(name).read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "telucodec":
                base = node.module[len("telucodec.") :] if "." in node.module else ""
                # `from telucodec.x import y`: x, and y too where y is a module of package x
                todo += [base] if base else []
                todo += [
                    f"{base}.{a.name}".lstrip(".")
                    for a in node.names
                    if source(f"{base}.{a.name}".lstrip(".")).exists()
                ]
    return sorted(seen)


def code_fingerprint(source: str) -> str:
    """A hash of what a module *does*: its syntax tree without docstrings (comments and layout never reach the
    tree). A docstring, comment or formatting edit keeps the fingerprint, so the notebooks' run cache stays warm;
    any change to the code changes it."""
    import ast

    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()


def _source_hash() -> str:
    h = hashlib.sha256()
    pkg = Path(__file__).parents[1]  # the telucodec package folder
    for name in run_modules():
        path = pkg / f"{name.replace('.', '/')}.py"
        path = path if path.exists() else pkg / name.replace(".", "/") / "__init__.py"
        h.update(name.encode() + code_fingerprint(path.read_text()).encode())
    return h.hexdigest()[:16]


def _clips_hash(clips) -> str:
    h = hashlib.sha256()
    for part in clips:
        for c in part:
            h.update(np.ascontiguousarray(c).tobytes())
    return h.hexdigest()[:16]


def run(
    profile: Profile,
    fixes: Fixes,
    clips=None,
    steps: int | None = None,
    seed: int = 0,
    recipe: str = "story",
    **train_changes,
):
    """Train (or fetch from the cache) one run of the profile's preset. Deterministic, so a cached run equals a
    fresh one bit for bit; the cache only saves time when several notebooks need the same run.
    `recipe`: "story" (the preset as the story trained it) or another of telucodec.training.recipes.RECIPES, e.g.
    "working" (the same network with the working recipe's ingredients on; `fixes` still decides the fixes).
    `train_changes` override TrainConfig fields (e.g. learning_rate=1e-5, optimizer="adam", amp="bf16")."""
    from dataclasses import replace

    from telucodec.codec.model import Codec
    from telucodec.training.loop import RunResult, fit
    from telucodec.training.recipes import recipe as get_recipe

    clips = clips if clips is not None else corpus_clips(profile)
    steps = steps or profile.steps
    p = get_preset(profile.preset)
    ccfg, tcfg = p.codec, p.train
    if recipe != "story":
        chosen = get_recipe(recipe, profile.preset, fixes=fixes)
        ccfg, tcfg = chosen.codec, chosen.train
    tcfg = replace(tcfg, seed=seed, **train_changes)
    numerics = (os.environ.get("MKL_CBWR"), torch.get_num_threads())
    extra = [] if numerics == ("COMPATIBLE", 1) else [list(numerics)]  # runs outside the CI set-up stay apart
    # The CPU kernels torch dispatches to (AVX512, AVX2, default; ATEN_CPU_CAPABILITY selects them) round
    # differently, so a run trained under one numeric path is never reused under another.
    extra.append(["cpu_capability", torch.backends.cpu.get_cpu_capability()])
    if recipe != "story":  # (story runs keep the keys they always had)
        extra.append(["recipe", recipe, ccfg.to_dict()])
    key = hashlib.sha256(
        json.dumps(
            [
                _source_hash(),
                _clips_hash(clips),
                profile.preset,
                profile.device,
                steps,
                fixes.to_dict(),
                tcfg.to_dict(),
                torch.__version__,
            ]
            + extra,
            sort_keys=True,
        ).encode()
    ).hexdigest()[:24]
    path = cache_dir() / "runs" / f"{key}.pt"
    if path.exists():
        try:
            state = torch.load(path, weights_only=True)
            torch.manual_seed(seed)
            model = Codec(ccfg, fixes)
            model.load_state_dict(state["model"])
            return RunResult(
                model=model.to(profile.device),
                history=json.loads(state["history"]),
                epochs=json.loads(state["epochs"]),
                step=steps,
                seconds=float(state["seconds"]),
            )
        except Exception:
            path.unlink(missing_ok=True)
    result = fit(
        profile.preset,
        fixes,
        clips,
        codec_config=ccfg,
        train_config=tcfg,
        steps=steps,
        device=profile.device,
        print_epochs=False,
        progress=False,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    torch.save(
        {
            "model": result.model.state_dict(),
            "history": json.dumps(result.history),
            "epochs": json.dumps(result.epochs),
            "seconds": result.seconds,
        },
        tmp,
    )
    os.replace(tmp, path)
    return result


def reconstruct(model, wav: np.ndarray, n_q: int | None = None) -> np.ndarray:
    """Run a clip through a model (eval mode, no gradient) and return the output as float32 numpy
    (telucodec.evaluation.scoring.reconstruct, the package's one path)."""
    from telucodec.evaluation.scoring import reconstruct as _reconstruct

    return _reconstruct(model, wav, n_q)


def chain(k: int) -> Fixes:
    """The book's running configuration after chapter k of the fixes: the first k fixes on, in the story's order
    (chain(0) = Fixes.none(), chain(7) = Fixes.all())."""
    from telucodec.fixes import SEVEN

    return Fixes(**{name: i < k for i, name in enumerate(SEVEN)})
