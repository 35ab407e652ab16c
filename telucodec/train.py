"""Training: one loop for CPU, one GPU and many GPUs (torchrun), with atomic checkpoints and exact resume.

`fit()` is what notebooks call; `python -m telucodec train` wraps it with data loading and a command line.
"""
from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from . import checkpoint as ckpt
from .batches import crop_batch, eval_crops, steps_per_epoch
from .config import CodecConfig, TrainConfig, preset as get_preset
from .errors import TeluCodecError
from .fixes import Fixes
from .losses import Balancer, total_loss, working_loss
from .metrics import mel_distance, range_ratio, si_snr, snr
from .model import Codec
from .quantizer import codebook_usage


class TrainingDiverged(TeluCodecError):
    """The loss or the gradients became NaN or inf."""


@dataclass
class RunResult:
    model: Codec
    history: list = field(default_factory=list)   # one dict per logged step
    epochs: list = field(default_factory=list)    # one dict of validation diagnostics per epoch
    step: int = 0
    skipped_steps: int = 0
    run_dir: Path | None = None
    seconds: float = 0.0


# ----------------------------------------------------------------------------------------------- helpers
def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "python": {"version": version, "internal": list(internal), "gauss": gauss},
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict):
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def learning_rate(step: int, cfg: TrainConfig, total_steps: int | None = None) -> float:
    """Linear warm-up to cfg.learning_rate over warmup_steps, then constant (the story) or, with
    lr_schedule="cosine", a half cosine from the peak down to 10 % of it at `total_steps`."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "cosine" and total_steps:
        done = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        return cfg.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done)))
    return cfg.learning_rate


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.learning_rate)
    return torch.optim.AdamW(params, lr=cfg.learning_rate, betas=tuple(cfg.adam_betas),
                             weight_decay=cfg.weight_decay)


def _grad_norm(params) -> float:
    grads = [p.grad.detach().float().norm() for p in params if p.grad is not None]
    return float(torch.stack(grads).norm()) if grads else 0.0


def _amp_dtype(amp: str):
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[amp]


# ----------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(model: Codec, crops: list, n_q: int | None = None, device="cpu") -> dict:
    """The story's diagnostics on fixed validation excerpts: output range, range ratio, SNR, SI-SNR, mel
    distance and codebook usage, averaged over clips (range/ratio over the concatenation)."""
    was_training = model.training
    model.eval()
    sr = model.config.sample_rate
    refs, ests, all_codes = [], [], []
    for crop in crops:
        x = torch.from_numpy(crop)[None, None].to(device)
        out = model(x, n_q=n_q or model.config.n_q)
        ests.append(out["wav"][0, 0].float().cpu().numpy())
        refs.append(crop)
        all_codes.append(out["codes"].cpu().transpose(0, 1).reshape(out["codes"].shape[1], -1).T[None])
    model.train(was_training)
    ref_all, est_all = np.concatenate(refs), np.concatenate(ests)
    codes = torch.cat([c.transpose(1, 2) for c in all_codes], dim=2)  # (1, n_q, frames)
    usage = codebook_usage(codes, model.config.codebook_size)
    dead = [int(stage.dead_codes().sum()) for stage in model.quantizer.stages]
    return {
        "output_min": float(est_all.min()), "output_max": float(est_all.max()),
        "range_ratio": range_ratio(ref_all, est_all),
        "snr_db": float(np.mean([snr(r, e) for r, e in zip(refs, ests)])),
        "si_snr_db": float(np.mean([si_snr(r, e) for r, e in zip(refs, ests)])),
        "mel_distance": float(np.mean([mel_distance(r, e, sr) for r, e in zip(refs, ests)])),
        "codebook_usage": float(np.mean(usage["usage"])),
        "perplexity": float(np.mean(usage["perplexity"])),
        "usage_per_stage": usage["usage"], "perplexity_per_stage": usage["perplexity"],
        "dead_codes_per_stage": dead,
    }


def format_epoch(epoch: int, d: dict) -> str:
    """The story's per-epoch diagnostic line."""
    scale = f"{d['output_scale']:.3f}" if d.get("output_scale") is not None else "n/a"
    return (f"epoch {epoch:3d} | output range [{d['output_min']:+.3f}, {d['output_max']:+.3f}] | "
            f"range ratio {d['range_ratio']:.3f} | output_scale {scale} | VQ loss {d['vq']:.4f} | "
            f"recon loss {d['recon']:.4f} | SNR {d['snr_db']:+.2f} dB")


# ----------------------------------------------------------------------------------------------- the loop
def fit(preset: str = "ci", fixes: Fixes = Fixes(), clips=None, *, codec_config: CodecConfig | None = None,
        train_config: TrainConfig | None = None, steps: int | None = None, checkpoint_dir=None,
        experiment_name: str = "run", device: str | None = None, resume: bool = False, log_every: int = 10,
        eval_every_epoch: bool = True, print_epochs: bool = True, progress: bool | None = None,
        inject_nonfinite_at: int | None = None, data_dir=None) -> RunResult:
    """Train a codec. `clips` = (train_clips, val_clips), lists of float32 numpy arrays at the codec's sample rate;
    if None they are loaded from `data_dir` (or the embedded corpus). Returns the model and its history."""
    p = get_preset(preset)
    ccfg = codec_config or p.codec
    tcfg = train_config or p.train
    if steps is not None:
        tcfg = replace(tcfg, steps=steps)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)

    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    distributed = world > 1
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(dev)
    is_main = rank == 0

    if clips is None:
        from .data import load_dataset
        from .data import spec_for
        clips = (load_dataset(data_dir, spec_for(ccfg, tcfg), "train"),
                 load_dataset(data_dir, spec_for(ccfg, tcfg), "val"))
    train_clips, val_clips = clips
    if tcfg.loudness_lufs is not None:
        from .audio_io import normalise_loudness
        train_clips = [normalise_loudness(c, ccfg.sample_rate, tcfg.loudness_lufs) for c in train_clips]
    segment = int(round(tcfg.segment_seconds * ccfg.sample_rate))
    if tcfg.batch_size % world:
        raise TeluCodecError(f"--batch_size {tcfg.batch_size} must be divisible by the {world} processes")
    per_epoch = steps_per_epoch(train_clips, tcfg.batch_size, segment)
    total_steps = tcfg.steps if tcfg.steps is not None else tcfg.num_epochs * per_epoch
    val = eval_crops(val_clips, int(ccfg.sample_rate * 2.0), tcfg.eval_clips)

    seed_everything(tcfg.seed)
    model = Codec(ccfg, fixes).to(dev)
    optimizer = make_optimizer(model, tcfg)
    amp_dtype = _amp_dtype(tcfg.amp)
    scaler = torch.amp.GradScaler(dev.type, enabled=(amp_dtype == torch.float16))
    balancer = None
    if tcfg.loss == "working" and tcfg.balancer:
        rest = (1 - tcfg.waveform_share) / 2
        balancer = Balancer({"waveform": tcfg.waveform_share, "stft": rest, "mel": rest})
    result = RunResult(model=model)
    start_step = 0
    seconds_before = 0.0                       # training time of earlier sittings (resume)

    run_dir = None
    if checkpoint_dir is not None:
        run_dir = Path(checkpoint_dir) / experiment_name
        if is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
        result.run_dir = run_dir
        if resume:
            found = ckpt.load_latest_good(run_dir, map_location=dev)
            if found is None:
                if is_main:
                    print(f"no checkpoint in {run_dir} yet: starting from step 0", file=sys.stderr)
            else:
                state = found[1]
                _check_same_run(state, ccfg, fixes, run_dir)
                model.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
                scaler.load_state_dict(state["scaler"])
                _restore_rng(state["rng"])
                start_step = int(state["step"])
                result.history = json.loads(state["history"])
                result.epochs = json.loads(state["epochs"])
                result.skipped_steps = int(state.get("skipped_steps", 0))
                seconds_before = float(state.get("train_seconds", 0.0))
                if balancer is not None:
                    balancer.load_state_dict(state["balancer"])
    if start_step == 0 and ccfg.kmeans_buffer > 0:
        frames = max(1, segment // ccfg.hop_length) * tcfg.batch_size
        n_batches = -(-ccfg.kmeans_buffer // frames)
        model.init_codebooks([crop_batch(train_clips, 2 ** 40 + i, tcfg.batch_size, segment, tcfg.seed).to(dev)
                              for i in range(n_batches)])
    ddp_model = model
    if distributed:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None, find_unused_parameters=True)

    def save(step):
        if run_dir is None or not is_main:
            return
        state = {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            "rng": _rng_state(), "step": step, "codec_config": ccfg.to_dict(), "train_config": tcfg.to_dict(),
            "fixes": fixes.to_dict(), "history": json.dumps(result.history), "epochs": json.dumps(result.epochs),
            "skipped_steps": result.skipped_steps,
            "train_seconds": seconds_before + time.perf_counter() - t0,
        }
        if balancer is not None:
            state["balancer"] = balancer.state_dict()
        ckpt.save_checkpoint(run_dir / f"step_{step:08d}.pt", state)
        ckpt.keep_last(run_dir, 2)
        if tcfg.keep_every and step % tcfg.keep_every == 0:   # weights-only snapshots for quality curves
            from .inference import export_safetensors
            (run_dir / "snapshots").mkdir(exist_ok=True)
            export_safetensors(model, run_dir / "snapshots" / f"step_{step:08d}.safetensors",
                               {"step": step, "train_seconds": f"{state['train_seconds']:.1f}"})

    log_file = open(run_dir / "metrics.jsonl", "a") if (run_dir is not None and is_main) else None
    show = progress if progress is not None else (is_main and sys.stderr.isatty())
    bar = None
    if show and total_steps > start_step:
        from tqdm.auto import tqdm
        bar = tqdm(total=total_steps, initial=start_step, desc=experiment_name, leave=False)

    encoder_params = list(model.encoder.parameters())
    t0 = time.perf_counter()
    model.train()
    step = start_step
    running = {"recon": 0.0, "vq": 0.0, "perceptual": 0.0, "n": 0}
    try:
        while step < total_steps:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, tcfg, total_steps)
            x = crop_batch(train_clips, step, tcfg.batch_size, segment, tcfg.seed, rank, world,
                           gain_jitter_db=tcfg.gain_jitter_db).to(dev)
            # The EMA codebook update happens inside the forward pass, before the loss can be checked: keep a copy
            # so that a skipped step leaves no trace (a NaN latent would otherwise poison every codebook).
            vq_backup = ({k: v.clone() for k, v in model.quantizer.state_dict().items()}
                         if tcfg.on_nonfinite == "skip" else None)
            with torch.autocast(dev.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                out = ddp_model(x)
                out["z"].retain_grad()
                if tcfg.loss == "working":
                    losses = working_loss(out["wav"], x, out["vq_loss"], ccfg.sample_rate)
                else:
                    losses = total_loss(out["wav"], x, out["vq_loss"], ccfg.sample_rate, fixes)
            loss = losses["total"]
            if inject_nonfinite_at is not None and step == inject_nonfinite_at:
                loss = loss * float("nan")
            optimizer.zero_grad(set_to_none=True)
            finite = torch.isfinite(loss.detach()).reshape(())
            if distributed:                # one rank's NaN must skip (or stop) the step on every rank, decided
                flag = finite.to(dev, torch.float32)     # before any gradient all-reduce could hang or diverge
                dist.all_reduce(flag, op=dist.ReduceOp.MIN)
                finite = flag > 0
            if not bool(finite):
                _nonfinite(f"loss is {float(loss.detach())} at step {step}", tcfg, run_dir, result)
                model.quantizer.load_state_dict(vq_backup)
                step += 1
                if run_dir is not None and (step % tcfg.checkpoint_every == 0 or step == total_steps):
                    save(step)                                 # a skipped last step still ends with a checkpoint
                continue
            if balancer is not None:
                balancer.backward(losses["terms"], out["wav"], out["vq_loss"],
                                  scaler.get_scale() if scaler.is_enabled() else 1.0)
            else:
                scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            enc_norm = _grad_norm(encoder_params)
            z_grad = float(out["z"].grad.float().norm()) if out["z"].grad is not None else 0.0
            total_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.max_grad_norm)
            if not math.isfinite(float(total_norm)) and amp_dtype != torch.float16:
                _nonfinite(f"gradient norm is {float(total_norm)} at step {step}", tcfg, run_dir, result)
                optimizer.zero_grad(set_to_none=True)
                model.quantizer.load_state_dict(vq_backup)
                step += 1
                if run_dir is not None and (step % tcfg.checkpoint_every == 0 or step == total_steps):
                    save(step)
                continue
            scaler.step(optimizer)
            scaler.update()
            step += 1
            for k in ("recon", "vq", "perceptual"):
                running[k] += float(losses[k])
            running["n"] += 1
            if is_main and (step % log_every == 0 or step == total_steps):
                rec = {"step": step, "loss": float(loss.detach()), "recon": float(losses["recon"]),
                       "perceptual": float(losses["perceptual"]), "vq": float(losses["vq"]),
                       "clamped": losses["clamped"], "n_q": int(out["n_q"]),
                       "grad_norm": float(total_norm), "grad_norm_encoder": enc_norm, "grad_norm_z": z_grad,
                       "lr": optimizer.param_groups[0]["lr"],
                       "output_scale": _scale(model), "output_peak": float(out["wav"].detach().abs().max()),
                       "input_peak": float(x.abs().max())}
                if tcfg.loss == "working":
                    rec.update({k: float(losses[k]) for k in ("waveform", "stft", "mel")})
                result.history.append(rec)
                if log_file:
                    log_file.write(json.dumps(rec) + "\n")
                    log_file.flush()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
            epoch_done = step % per_epoch == 0 or step == total_steps
            if epoch_done and eval_every_epoch and is_main:
                n = max(running["n"], 1)
                diag = evaluate(model, val, device=dev)
                diag.update(epoch=len(result.epochs), step=step, output_scale=_scale(model),
                            recon=running["recon"] / n, vq=running["vq"] / n, perceptual=running["perceptual"] / n)
                result.epochs.append(diag)
                running = {"recon": 0.0, "vq": 0.0, "perceptual": 0.0, "n": 0}
                if log_file:
                    log_file.write(json.dumps({"epoch_summary": diag}) + "\n")
                    log_file.flush()
                if print_epochs:
                    msg = format_epoch(diag["epoch"], diag)
                    (bar.write(msg) if bar is not None else print(msg, flush=True))
            if run_dir is not None and (step % tcfg.checkpoint_every == 0 or step == total_steps):
                save(step)
    finally:
        if bar is not None:
            bar.close()
        if log_file:
            log_file.close()
    result.step = step
    result.seconds = time.perf_counter() - t0
    if distributed:
        dist.barrier()
    return result


def _scale(model) -> float | None:
    s = model.decoder.output_scale
    return float(s.detach()) if s is not None else None


def _nonfinite(what: str, cfg: TrainConfig, run_dir, result: RunResult):
    if cfg.on_nonfinite == "skip":
        result.skipped_steps += 1
        print(f"warning: {what}; step skipped (--on_nonfinite skip)", file=sys.stderr)
        return
    where = f"; last good checkpoint kept in {run_dir}" if run_dir is not None else ""
    raise TrainingDiverged(f"training stopped: {what}{where}")


def _check_same_run(state, ccfg: CodecConfig, fixes: Fixes, run_dir):
    if CodecConfig.from_dict(state["codec_config"]) != ccfg or Fixes.from_dict(state["fixes"]) != fixes:
        raise TeluCodecError(f"cannot resume {run_dir}: its checkpoint was trained with another model "
                             f"configuration or other fixes; use a new --experiment_name")


class _DataSpec:
    """The attributes data.load_dataset reads."""

    def __init__(self, ccfg: CodecConfig, tcfg: TrainConfig):
        self.sample_rate = ccfg.sample_rate
        self.segment_seconds = tcfg.segment_seconds
        self.corpus_minutes = tcfg.corpus_minutes
        self.val_fraction = tcfg.val_fraction
        self.seed = tcfg.seed
