"""What makes a training run repeatable and resumable: seeding, the RNG states, the checkpoint a run writes, exact
resume from it, and a new run started from a trained codec's weights (a fine-tune).

`run` below is the training loop's `_Run` (telucodec.training.loop): its model, optimizer, scaler, balancer,
discriminators, result and clocks are what a checkpoint holds.
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import replace

import numpy as np
import torch

from telucodec.codec.model import Codec
from telucodec.coding import checkpoint as ckpt
from telucodec.config import CodecConfig
from telucodec.errors import TeluCodecError
from telucodec.fixes import Fixes


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """The state of every random-number generator a run draws from (python, numpy, torch, CUDA), as tensors and
    plain values that a weights-only checkpoint can hold."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(cached),
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict):
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_run(run, step: int):
    """An atomic checkpoint of everything `resume_run` needs (and a weights snapshot every keep_every steps)."""
    if run.run_dir is None or not run.is_main:
        return
    result = run.result
    state = {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict(),
        "rng": rng_state(),
        "step": step,
        "codec_config": run.ccfg.to_dict(),
        "train_config": run.tcfg.to_dict(),
        "fixes": run.fixes.to_dict(),
        "history": json.dumps(result.history),
        "epochs": json.dumps(result.epochs),
        "skipped_steps": result.skipped_steps,
        "train_seconds": run.seconds_before + time.perf_counter() - run.t0,
        "cpu_seconds": run.cpu_before + time.process_time() - run.cpu0,
    }
    if run.balancer is not None:
        state["balancer"] = run.balancer.state_dict()
    if run.adversary is not None:
        state["adversary"] = run.adversary.state_dict()
    ckpt.save_checkpoint(run.run_dir / f"step_{step:08d}.pt", state)
    ckpt.keep_last(run.run_dir, 2)
    if run.tcfg.keep_every and step % run.tcfg.keep_every == 0:  # weights-only snapshots for curves
        from telucodec.coding.inference import export_safetensors

        (run.run_dir / "snapshots").mkdir(exist_ok=True)
        export_safetensors(
            run.model,
            run.run_dir / "snapshots" / f"step_{step:08d}.safetensors",
            {
                "step": step,
                "train_seconds": f"{state['train_seconds']:.1f}",
                "cpu_seconds": f"{state['cpu_seconds']:.1f}",
            },
        )


def resume_run(run) -> int:
    """Restore the newest good checkpoint (model, optimizer, scaler, balancer, RNGs, history); its step."""
    if run.run_dir is None:
        return 0
    found = ckpt.load_latest_good(run.run_dir, map_location=run.dev)
    if found is None:
        if run.is_main:
            print(f"no checkpoint in {run.run_dir} yet: starting from step 0", file=sys.stderr)
        return 0
    state = found[1]
    _check_same_run(state, run.ccfg, run.fixes, run.run_dir)
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scaler.load_state_dict(state["scaler"])
    restore_rng(state["rng"])
    run.result.history, run.result.epochs = json.loads(state["history"]), json.loads(state["epochs"])
    run.result.skipped_steps = int(state.get("skipped_steps", 0))
    run.seconds_before = float(state.get("train_seconds", 0.0))
    run.cpu_before = float(state.get("cpu_seconds", 0.0))
    if run.balancer is not None:
        run.balancer.load_state_dict(state["balancer"])
    if run.adversary is not None:
        if "adversary" not in state:
            raise TeluCodecError(
                f"cannot resume {run.run_dir} with discriminators: its checkpoint was "
                f"trained without them; use --init_from to start a new run from it"
            )
        try:
            run.adversary.load_state_dict(state["adversary"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise TeluCodecError(
                f"cannot resume {run.run_dir}: its discriminators differ from "
                f"--discriminators/--disc_channels ({type(exc).__name__})"
            ) from None
    return int(state["step"])


def _check_same_run(state, ccfg: CodecConfig, fixes: Fixes, run_dir):
    if CodecConfig.from_dict(state["codec_config"]) != ccfg or Fixes.from_dict(state["fixes"]) != fixes:
        raise TeluCodecError(
            f"cannot resume {run_dir}: its checkpoint was trained with another model "
            f"configuration or other fixes; use a new --experiment_name"
        )


def init_from_codec(run, path) -> str:
    """Start from the weights of a trained codec (a .pt checkpoint, a .safetensors export or a run folder),
    with a fresh optimizer, schedule and (if any) discriminators: a fine-tune. The architecture must match
    this run's; weight normalisation is re-applied if the source was exported with it folded."""
    from telucodec.codec.model import apply_weight_norm
    from telucodec.coding.inference import load, without_envelope

    loaded = load(path)
    if loaded.config.envelope_split and run.is_main:
        print(
            f"{path}: starting from its codec; its envelope codebooks are left out (they are fitted after "
            f"training: python -m telucodec fit-envelope)"
        )
    source = without_envelope(loaded).codec  # weight norm folded, config says weight_norm=False
    # a codec without the envelope post-filter can start one (its head starts at zero, as in a new run)
    new_postfilter = source.config.postfilter_bands == 0 and run.ccfg.postfilter_bands > 0
    comparable = replace(
        source.config,
        weight_norm=run.ccfg.weight_norm,
        postfilter_bands=run.ccfg.postfilter_bands if new_postfilter else source.config.postfilter_bands,
    )
    if comparable != run.ccfg:
        raise TeluCodecError(f"cannot start from {path}: it is another architecture than this run's preset")
    plain = Codec(replace(run.ccfg, weight_norm=False), run.fixes)
    missing, unexpected = plain.load_state_dict(source.state_dict(), strict=not new_postfilter)
    if any(not k.startswith("postfilter.") for k in missing) or unexpected:
        raise TeluCodecError(f"cannot start from {path}: its weights do not fit this run's codec")
    if run.ccfg.weight_norm:
        apply_weight_norm(plain.encoder)
        apply_weight_norm(plain.decoder.body)
    run.model.load_state_dict(plain.to(run.dev).state_dict())
    return str(path)
