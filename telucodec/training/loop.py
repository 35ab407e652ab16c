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

from telucodec.codec.model import Codec
from telucodec.codec.quantizer import codebook_usage
from telucodec.coding import checkpoint as ckpt
from telucodec.config import CodecConfig, TrainConfig
from telucodec.config import preset as get_preset
from telucodec.errors import TeluCodecError
from telucodec.evaluation.metrics import mel_distance, range_ratio, si_snr, snr
from telucodec.fixes import Fixes
from telucodec.training.batches import crop_batch, eval_crops, steps_per_epoch
from telucodec.training.losses import Balancer, balancer_shares, total_loss, working_loss


class TrainingDiverged(TeluCodecError):
    """The loss or the gradients became NaN or inf."""


@dataclass
class RunResult:
    model: Codec
    history: list = field(default_factory=list)  # one dict per logged step
    epochs: list = field(default_factory=list)  # one dict of validation diagnostics per epoch
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
    return torch.optim.AdamW(params, lr=cfg.learning_rate, betas=tuple(cfg.adam_betas), weight_decay=cfg.weight_decay)


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
        "output_min": float(est_all.min()),
        "output_max": float(est_all.max()),
        "range_ratio": range_ratio(ref_all, est_all),
        "snr_db": float(np.mean([snr(r, e) for r, e in zip(refs, ests)])),
        "si_snr_db": float(np.mean([si_snr(r, e) for r, e in zip(refs, ests)])),
        "mel_distance": float(np.mean([mel_distance(r, e, sr) for r, e in zip(refs, ests)])),
        "codebook_usage": float(np.mean(usage["usage"])),
        "perplexity": float(np.mean(usage["perplexity"])),
        "usage_per_stage": usage["usage"],
        "perplexity_per_stage": usage["perplexity"],
        "dead_codes_per_stage": dead,
        "crop": f"middle {len(crops[0]) / sr:g} s" if crops else "none",  # evaluation's crop policy "middle"
    }


def format_epoch(epoch: int, d: dict) -> str:
    """The story's per-epoch diagnostic line."""
    scale = f"{d['output_scale']:.3f}" if d.get("output_scale") is not None else "n/a"
    return (
        f"epoch {epoch:3d} | output range [{d['output_min']:+.3f}, {d['output_max']:+.3f}] | "
        f"range ratio {d['range_ratio']:.3f} | output_scale {scale} | VQ loss {d['vq']:.4f} | "
        f"recon loss {d['recon']:.4f} | SNR {d['snr_db']:+.2f} dB"
    )


# ----------------------------------------------------------------------------------------------- the loop
def fit(
    preset: str = "ci",
    fixes: Fixes = Fixes(),
    clips=None,
    *,
    codec_config: CodecConfig | None = None,
    train_config: TrainConfig | None = None,
    steps: int | None = None,
    checkpoint_dir=None,
    experiment_name: str = "run",
    device: str | None = None,
    resume: bool = False,
    log_every: int = 10,
    eval_every_epoch: bool = True,
    print_epochs: bool = True,
    progress: bool | str | None = None,
    inject_nonfinite_at: int | None = None,
    data_dir=None,
    init_from=None,
) -> RunResult:
    """Train a codec. `clips` = (train_clips, val_clips), lists of float32 numpy arrays at the codec's sample rate;
    if None they are loaded from `data_dir` (or the embedded corpus). `init_from`: start a new run from a trained
    codec's weights (a fine-tune; ignored when resuming). `progress`: True (a tqdm bar), "text" (a plain-text bar
    on stdout, for notebooks stored as documents), False, or None (a bar when stderr is a terminal).
    Returns the model and its history."""
    p = get_preset(preset)
    ccfg, tcfg = codec_config or p.codec, train_config or p.train
    if steps is not None:
        tcfg = replace(tcfg, steps=steps)
    run = _Run(ccfg, tcfg, fixes, device, checkpoint_dir, experiment_name)
    train_clips, val_clips = _training_clips(clips, data_dir, ccfg, tcfg)
    segment = int(round(tcfg.segment_seconds * ccfg.sample_rate))
    if tcfg.batch_size % run.world:
        raise TeluCodecError(f"--batch_size {tcfg.batch_size} must be divisible by the {run.world} processes")
    per_epoch = steps_per_epoch(train_clips, tcfg.batch_size, segment)
    total_steps = tcfg.steps if tcfg.steps is not None else tcfg.num_epochs * per_epoch
    val = eval_crops(val_clips, int(ccfg.sample_rate * 2.0), tcfg.eval_clips)
    run.build()
    step = run.resume() if resume else 0
    if step == 0 and init_from is not None:
        run.init_from(init_from)
    elif step == 0 and ccfg.kmeans_buffer > 0:
        frames = max(1, segment // ccfg.hop_length) * tcfg.batch_size
        run.model.init_codebooks(
            [
                crop_batch(train_clips, 2**40 + i, tcfg.batch_size, segment, tcfg.seed).to(run.dev)
                for i in range(-(-ccfg.kmeans_buffer // frames))
            ]
        )
    run.wrap_ddp()
    run.open_log(progress, total_steps, step)
    run.t0, run.cpu0 = time.perf_counter(), time.process_time()
    run.model.train()
    running = _Running()
    try:
        while step < total_steps:
            x = crop_batch(
                train_clips,
                step,
                tcfg.batch_size,
                segment,
                tcfg.seed,
                run.rank,
                run.world,
                gain_jitter_db=tcfg.gain_jitter_db,
            ).to(run.dev)
            record = run.train_step(x, step, total_steps, nan_here=inject_nonfinite_at == step)
            step += 1
            if record is not None:  # None: a non-finite step was skipped
                running.add(record)
                if run.is_main and (step % log_every == 0 or step == total_steps):
                    run.log({"step": step, **record})
                run.tick(record["loss"])
                if eval_every_epoch and run.is_main and (step % per_epoch == 0 or step == total_steps):
                    run.end_epoch(val, step, running.means(), print_epochs)
                    running = _Running()
            if run.run_dir is not None and (step % tcfg.checkpoint_every == 0 or step == total_steps):
                run.save(step)  # a skipped last step still ends with a checkpoint
    finally:
        run.close()
    run.result.step, run.result.seconds = step, time.perf_counter() - run.t0
    if run.distributed:
        dist.barrier()
    return run.result


def _training_clips(clips, data_dir, ccfg: CodecConfig, tcfg: TrainConfig):
    """(train, val) clips: as given, or loaded from data_dir / the embedded corpus; training clips loudness-
    normalised when the recipe asks for it (validation clips are scored as they are)."""
    if clips is None:
        from telucodec.data.folders import load_dataset, spec_for

        clips = (
            load_dataset(data_dir, spec_for(ccfg, tcfg), "train"),
            load_dataset(data_dir, spec_for(ccfg, tcfg), "val"),
        )
    train_clips, val_clips = clips
    if tcfg.loudness_lufs is not None:
        from telucodec.data.audio_io import normalise_loudness

        train_clips = [normalise_loudness(c, ccfg.sample_rate, tcfg.loudness_lufs) for c in train_clips]
    return train_clips, val_clips


class _Running:
    """Means of the loss parts over the steps of one epoch (for the story's per-epoch line)."""

    def __init__(self):
        self.sums, self.n = {"recon": 0.0, "vq": 0.0, "perceptual": 0.0}, 0

    def add(self, record: dict):
        for k in self.sums:
            self.sums[k] += record[k]
        self.n += 1

    def means(self) -> dict:
        return {k: v / max(self.n, 1) for k, v in self.sums.items()}


class _Run:
    """Everything one training run holds: device and ranks, model, optimizer, scaler, balancer, checkpoints, logs.
    `fit` is the loop; this class is the state it steps, saves and restores."""

    def __init__(self, ccfg, tcfg, fixes, device, checkpoint_dir, experiment_name):
        self.ccfg, self.tcfg, self.fixes, self.experiment_name = ccfg, tcfg, fixes, experiment_name
        self.dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.world, self.rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
        self.distributed, self.is_main = self.world > 1, self.rank == 0
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if self.dev.type == "cuda" else "gloo")
            if self.dev.type == "cuda":
                self.dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(self.dev)
        self.run_dir = Path(checkpoint_dir) / experiment_name if checkpoint_dir is not None else None
        self.seconds_before, self.t0, self.log_file, self.bar = 0.0, time.perf_counter(), None, None
        self.cpu_before, self.cpu0 = 0.0, time.process_time()  # CPU time of this process (all its threads)

    def build(self):
        """Seed, then create the model, optimizer, gradient scaler and (working loss) balancer."""
        tcfg = self.tcfg
        seed_everything(tcfg.seed)
        self.model = Codec(self.ccfg, self.fixes).to(self.dev)
        self.ddp_model = self.model
        self.optimizer = make_optimizer(self.model, tcfg)
        self.amp_dtype = _amp_dtype(tcfg.amp)
        self.scaler = torch.amp.GradScaler(self.dev.type, enabled=(self.amp_dtype == torch.float16))
        self.balancer = None
        if tcfg.loss == "working" and tcfg.balancer:
            self.balancer = Balancer(balancer_shares(tcfg))
        self.adversary = None
        if tcfg.discriminators:
            from telucodec.training.adversarial import Adversary

            with torch.random.fork_rng(devices=[]):  # the codec's random stream is the same with or without D
                torch.manual_seed(tcfg.seed + 1)
                self.adversary = Adversary(
                    tcfg.discriminators,
                    tcfg.disc_channels,
                    tcfg.adversarial_loss,
                    tcfg.disc_learning_rate or tcfg.learning_rate,
                    tcfg.adam_betas,
                    tcfg.max_grad_norm,
                    self.dev,
                )
        self.result = RunResult(model=self.model, run_dir=self.run_dir)
        self.encoder_params = list(self.model.encoder.parameters())
        if self.run_dir is not None and self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)

    def resume(self) -> int:
        """Restore the newest good checkpoint (model, optimizer, scaler, balancer, RNGs, history); its step."""
        if self.run_dir is None:
            return 0
        found = ckpt.load_latest_good(self.run_dir, map_location=self.dev)
        if found is None:
            if self.is_main:
                print(f"no checkpoint in {self.run_dir} yet: starting from step 0", file=sys.stderr)
            return 0
        state = found[1]
        _check_same_run(state, self.ccfg, self.fixes, self.run_dir)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        _restore_rng(state["rng"])
        self.result.history, self.result.epochs = json.loads(state["history"]), json.loads(state["epochs"])
        self.result.skipped_steps = int(state.get("skipped_steps", 0))
        self.seconds_before = float(state.get("train_seconds", 0.0))
        self.cpu_before = float(state.get("cpu_seconds", 0.0))
        if self.balancer is not None:
            self.balancer.load_state_dict(state["balancer"])
        if self.adversary is not None:
            if "adversary" not in state:
                raise TeluCodecError(
                    f"cannot resume {self.run_dir} with discriminators: its checkpoint was "
                    f"trained without them; use --init_from to start a new run from it"
                )
            try:
                self.adversary.load_state_dict(state["adversary"])
            except (RuntimeError, ValueError, KeyError) as exc:
                raise TeluCodecError(
                    f"cannot resume {self.run_dir}: its discriminators differ from "
                    f"--discriminators/--disc_channels ({type(exc).__name__})"
                ) from None
        return int(state["step"])

    def init_from(self, path) -> str:
        """Start from the weights of a trained codec (a .pt checkpoint, a .safetensors export or a run folder),
        with a fresh optimizer, schedule and (if any) discriminators: a fine-tune. The architecture must match
        this run's; weight normalisation is re-applied if the source was exported with it folded."""
        from telucodec.codec.model import apply_weight_norm
        from telucodec.coding.inference import load, without_envelope

        loaded = load(path)
        if loaded.config.envelope_split and self.is_main:
            print(
                f"{path}: starting from its codec; its envelope codebooks are left out (they are fitted after "
                f"training: python -m telucodec fit-envelope)"
            )
        source = without_envelope(loaded).codec  # weight norm folded, config says weight_norm=False
        # a codec without the envelope post-filter can start one (its head starts at zero, as in a new run)
        new_postfilter = source.config.postfilter_bands == 0 and self.ccfg.postfilter_bands > 0
        comparable = replace(
            source.config,
            weight_norm=self.ccfg.weight_norm,
            postfilter_bands=self.ccfg.postfilter_bands if new_postfilter else source.config.postfilter_bands,
        )
        if comparable != self.ccfg:
            raise TeluCodecError(f"cannot start from {path}: it is another architecture than this run's preset")
        plain = Codec(replace(self.ccfg, weight_norm=False), self.fixes)
        missing, unexpected = plain.load_state_dict(source.state_dict(), strict=not new_postfilter)
        if any(not k.startswith("postfilter.") for k in missing) or unexpected:
            raise TeluCodecError(f"cannot start from {path}: its weights do not fit this run's codec")
        if self.ccfg.weight_norm:
            apply_weight_norm(plain.encoder)
            apply_weight_norm(plain.decoder.body)
        self.model.load_state_dict(plain.to(self.dev).state_dict())
        return str(path)

    def wrap_ddp(self):
        if self.distributed:
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[self.dev.index] if self.dev.type == "cuda" else None,
                find_unused_parameters=True,
            )

    def save(self, step: int):
        """An atomic checkpoint of everything `resume` needs (and a weights snapshot every keep_every steps)."""
        if self.run_dir is None or not self.is_main:
            return
        result = self.result
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(),
            "step": step,
            "codec_config": self.ccfg.to_dict(),
            "train_config": self.tcfg.to_dict(),
            "fixes": self.fixes.to_dict(),
            "history": json.dumps(result.history),
            "epochs": json.dumps(result.epochs),
            "skipped_steps": result.skipped_steps,
            "train_seconds": self.seconds_before + time.perf_counter() - self.t0,
            "cpu_seconds": self.cpu_before + time.process_time() - self.cpu0,
        }
        if self.balancer is not None:
            state["balancer"] = self.balancer.state_dict()
        if self.adversary is not None:
            state["adversary"] = self.adversary.state_dict()
        ckpt.save_checkpoint(self.run_dir / f"step_{step:08d}.pt", state)
        ckpt.keep_last(self.run_dir, 2)
        if self.tcfg.keep_every and step % self.tcfg.keep_every == 0:  # weights-only snapshots for curves
            from telucodec.coding.inference import export_safetensors

            (self.run_dir / "snapshots").mkdir(exist_ok=True)
            export_safetensors(
                self.model,
                self.run_dir / "snapshots" / f"step_{step:08d}.safetensors",
                {
                    "step": step,
                    "train_seconds": f"{state['train_seconds']:.1f}",
                    "cpu_seconds": f"{state['cpu_seconds']:.1f}",
                },
            )

    def train_step(self, x: torch.Tensor, step: int, total_steps: int, nan_here: bool = False) -> dict | None:
        """One optimisation step. Returns what to log, or None when a non-finite loss or gradient made it skip
        (with --on_nonfinite skip; otherwise TrainingDiverged is raised). Non-finite handling is written once."""
        tcfg, model, optimizer, scaler = self.tcfg, self.model, self.optimizer, self.scaler
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, tcfg, total_steps)
        # The EMA codebook update happens inside the forward pass, before the loss can be checked: keep a copy
        # so that a skipped step leaves no trace (a NaN latent would otherwise poison every codebook).
        vq_backup = (
            {k: v.clone() for k, v in model.quantizer.state_dict().items()} if tcfg.on_nonfinite == "skip" else None
        )
        amp = self.amp_dtype
        with torch.autocast(self.dev.type, dtype=amp or torch.float32, enabled=amp is not None):
            out = self.ddp_model(x)
            out["z"].retain_grad()
            decoded = out.get("wav_raw", out["wav"])  # with the envelope post-filter: the decoder's own output
            if tcfg.loss == "working":
                losses = working_loss(
                    decoded,
                    x,
                    out["vq_loss"],
                    self.ccfg.sample_rate,
                    floor_db=tcfg.spectral_floor_db,
                    pre_emphasis=tcfg.pre_emphasis,
                    waveform_lowpass_hz=tcfg.waveform_lowpass_hz,
                )
            else:
                losses = total_loss(decoded, x, out["vq_loss"], self.ccfg.sample_rate, self.fixes)
        loss, adv, envelope = losses["total"], None, None
        if "envelope" in out:  # the post-filter's own loss, outside the balancer
            from telucodec.codec.postfilter import envelope_loss

            envelope = envelope_loss(model.postfilter, out["envelope"], x)
            loss = loss + tcfg.envelope_weight * envelope
        if self.adversary is not None and step >= tcfg.disc_start_step:
            codec_terms = step >= tcfg.disc_start_step + tcfg.disc_warmup_steps
            adv = self.adversary.losses(out["wav"], x, generator_terms=codec_terms)
            if codec_terms:
                losses.setdefault("terms", {}).update(adversarial=adv["adversarial"], feature=adv["feature"])
                loss = loss + tcfg.adversarial_weight * adv["adversarial"] + tcfg.feature_weight * adv["feature"]
        loss = loss * float("nan") if nan_here else loss
        optimizer.zero_grad(set_to_none=True)
        finite = torch.isfinite(loss.detach()).reshape(())
        if adv is not None:  # a non-finite discriminator loss skips the step too
            finite = finite & torch.isfinite(adv["discriminator"].detach()).reshape(())
        if self.distributed:  # one rank's NaN must skip (or stop) the step on every rank, decided
            flag = finite.to(self.dev, torch.float32)  # before any gradient all-reduce could hang or diverge
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            finite = flag > 0
        if not bool(finite):
            bad_d = adv is not None and not bool(torch.isfinite(adv["discriminator"].detach()))
            what, value = ("discriminator loss", adv["discriminator"]) if bad_d else ("loss", loss)
            return self._skip(f"{what} is {float(value.detach())} at step {step}", vq_backup)
        d_grads = self.adversary.gradients(adv["discriminator"]) if adv is not None else None
        if self.balancer is not None:
            self.balancer.backward(
                losses["terms"],
                decoded,
                out["vq_loss"],
                scaler.get_scale() if scaler.is_enabled() else 1.0,
                extra=None if envelope is None else tcfg.envelope_weight * envelope,
            )
        else:
            scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        enc_norm = _grad_norm(self.encoder_params)
        z_grad = float(out["z"].grad.float().norm()) if out["z"].grad is not None else 0.0
        total_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.max_grad_norm)
        if not math.isfinite(float(total_norm)) and amp != torch.float16:
            return self._skip(f"gradient norm is {float(total_norm)} at step {step}", vq_backup)
        d_norm = self.adversary.clip(d_grads, self.world) if d_grads is not None else None
        if d_norm is not None and not math.isfinite(d_norm):
            return self._skip(f"discriminator gradient norm is {d_norm} at step {step}", vq_backup)
        scaler.step(optimizer)
        scaler.update()
        if d_grads is not None:
            self.adversary.step(
                learning_rate(step, tcfg, total_steps)
                * (tcfg.disc_learning_rate or tcfg.learning_rate)
                / tcfg.learning_rate
            )
        record = {
            "loss": float(loss.detach()),
            "recon": float(losses["recon"]),
            "perceptual": float(losses["perceptual"]),
            "vq": float(losses["vq"]),
            "clamped": losses["clamped"],
            "n_q": int(out["n_q"]),
            "grad_norm": float(total_norm),
            "grad_norm_encoder": enc_norm,
            "grad_norm_z": z_grad,
            "lr": optimizer.param_groups[0]["lr"],
            "output_scale": _scale(model),
            "output_peak": float(out["wav"].detach().abs().max()),
            "input_peak": float(x.abs().max()),
        }
        if tcfg.loss == "working":
            record.update({k: float(losses[k]) for k in ("waveform", "stft", "mel")})
        if envelope is not None:
            record["envelope"] = float(envelope.detach())
        if adv is not None:
            record.update({k: float(v.detach()) for k, v in adv.items()}, grad_norm_discriminator=d_norm)
        return record

    def _skip(self, what: str, vq_backup):
        _nonfinite(what, self.tcfg, self.run_dir, self.result)  # raises unless --on_nonfinite skip
        self.optimizer.zero_grad(set_to_none=True)
        if self.adversary is not None:
            self.adversary.optimizer.zero_grad(set_to_none=True)
        self.model.quantizer.load_state_dict(vq_backup)
        return None

    def open_log(self, progress, total_steps: int, start_step: int):
        if self.run_dir is not None and self.is_main:
            self.log_file = open(self.run_dir / "metrics.jsonl", "a")
        show = progress if progress is not None else (self.is_main and sys.stderr.isatty())
        if show == "text" and total_steps > start_step:  # a plain-text bar (notebooks stored as documents)
            from tqdm.std import tqdm

            self.bar = tqdm(
                total=total_steps,
                initial=start_step,
                desc=self.experiment_name,
                file=sys.stdout,
                mininterval=10.0,
                ascii=True,
                ncols=90,
            )
        elif show and total_steps > start_step:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, desc=self.experiment_name, leave=False)

    def log(self, record: dict, key: str | None = None):
        if key is None:
            self.result.history.append(record)
        if self.log_file:
            self.log_file.write(json.dumps(record if key is None else {key: record}) + "\n")
            self.log_file.flush()

    def tick(self, loss: float):
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    def end_epoch(self, val: list, step: int, means: dict, print_epochs: bool):
        """The story's per-epoch diagnostics on the validation crops, logged and (optionally) printed."""
        diag = evaluate(self.model, val, device=self.dev)
        diag.update(epoch=len(self.result.epochs), step=step, output_scale=_scale(self.model), **means)
        self.result.epochs.append(diag)
        self.log(diag, key="epoch_summary")
        if print_epochs:
            msg = format_epoch(diag["epoch"], diag)
            (self.bar.write(msg) if self.bar is not None else print(msg, flush=True))

    def close(self):
        if self.bar is not None:
            self.bar.close()
        if self.log_file:
            self.log_file.close()


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
        raise TeluCodecError(
            f"cannot resume {run_dir}: its checkpoint was trained with another model "
            f"configuration or other fixes; use a new --experiment_name"
        )
