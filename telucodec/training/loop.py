"""Training: one loop for CPU, one GPU and many GPUs (torchrun), with atomic checkpoints and exact resume.

`fit()` is what notebooks call; `python -m telucodec train` wraps it with data loading and a command line. `fit` is
the outline of training (set up the run, step, log, evaluate each epoch, checkpoint); `_Run` holds the state it
steps and does one optimisation step. The details live beside it: telucodec.training.run_data (clips, crops, step
counts), training.optim (optimizer, learning-rate schedule), training.run_state (seeding, checkpoints, exact resume)
and training.validation (the per-epoch diagnostics).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.distributed as dist

from telucodec.codec.model import Codec
from telucodec.config import CodecConfig, TrainConfig
from telucodec.config import preset as get_preset
from telucodec.errors import TeluCodecError
from telucodec.fixes import Fixes
from telucodec.training.losses import Balancer, balancer_shares, total_loss, working_loss
from telucodec.training.optim import amp_dtype, grad_norm, learning_rate, make_optimizer
from telucodec.training.run_data import RunData
from telucodec.training.run_state import init_from_codec, resume_run, save_run, seed_everything
from telucodec.training.validation import EpochMeans, evaluate, format_epoch


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
    ccfg, tcfg = _configs(preset, codec_config, train_config, steps)
    run = _Run(ccfg, tcfg, fixes, device, checkpoint_dir, experiment_name)
    data = RunData.prepare(clips, data_dir, ccfg, tcfg, run.world)
    step = run.start(data, resume, init_from, progress)
    running = EpochMeans()
    try:
        while step < data.total_steps:
            x = data.batch(step, run.rank, run.world).to(run.dev)
            record = run.train_step(x, step, data.total_steps, nan_here=inject_nonfinite_at == step)
            step += 1
            last = step == data.total_steps
            if record is not None:  # None: a non-finite step was skipped
                running.add(record)
                if run.is_main and (step % log_every == 0 or last):
                    run.log({"step": step, **record})
                run.tick(record["loss"])
                if eval_every_epoch and run.is_main and (step % data.per_epoch == 0 or last):
                    run.end_epoch(data.val, step, running.means(), print_epochs)
                    running = EpochMeans()
            if run.run_dir is not None and (step % tcfg.checkpoint_every == 0 or last):
                save_run(run, step)  # a skipped last step still ends with a checkpoint
    finally:
        run.close()
    return run.finish(step)


def _configs(preset: str, codec_config: CodecConfig | None, train_config: TrainConfig | None, steps: int | None):
    """The run's (codec, training) configurations: the preset's unless given, `steps` overriding its length."""
    p = get_preset(preset)
    ccfg, tcfg = codec_config or p.codec, train_config or p.train
    if steps is not None:
        tcfg = replace(tcfg, steps=steps)
    return ccfg, tcfg


class _Run:
    """Everything one training run holds: device and ranks, model, optimizer, scaler, balancer, checkpoints, logs.
    `fit` is the loop; this class is the state it steps (saved and restored by telucodec.training.run_state)."""

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

    def start(self, data: RunData, resume: bool, init_from, progress) -> int:
        """Build the run; restore its newest checkpoint (`resume`), or start it from a trained codec (`init_from`)
        or with k-means codebooks; open the log and start the clocks. Returns the step it starts from."""
        self.build()
        step = resume_run(self) if resume else 0
        if step == 0 and init_from is not None:
            init_from_codec(self, init_from)
        elif step == 0 and self.ccfg.kmeans_buffer > 0:
            self.model.init_codebooks(data.kmeans_batches(self.ccfg, self.dev))
        self.wrap_ddp()
        self.open_log(progress, data.total_steps, step)
        self.t0, self.cpu0 = time.perf_counter(), time.process_time()
        self.model.train()
        return step

    def build(self):
        """Seed, then create the model, optimizer, gradient scaler and (working loss) balancer."""
        tcfg = self.tcfg
        seed_everything(tcfg.seed)
        self.model = Codec(self.ccfg, self.fixes).to(self.dev)
        self.ddp_model = self.model
        self.optimizer = make_optimizer(self.model, tcfg)
        self.amp_dtype = amp_dtype(tcfg.amp)
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

    def wrap_ddp(self):
        if self.distributed:
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[self.dev.index] if self.dev.type == "cuda" else None,
                find_unused_parameters=True,
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
        enc_norm = grad_norm(self.encoder_params)
        z_grad = out["z"].grad.float().norm() if out["z"].grad is not None else torch.zeros(())
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
        # The step's record, read from the device in one transfer (float() on each value would wait for the
        # device once per value): every value is a 0-d tensor until then, and the same number after.
        values = {"loss": loss.detach(), "recon": losses["recon"], "perceptual": losses["perceptual"]}
        values.update(vq=losses["vq"], grad_norm=total_norm, grad_norm_encoder=enc_norm, grad_norm_z=z_grad)
        scale = model.decoder.output_scale
        if scale is not None:
            values["output_scale"] = scale.detach()
        values.update(output_peak=out["wav"].detach().abs().max(), input_peak=x.abs().max())
        if tcfg.loss == "working":
            values.update({k: losses[k] for k in ("waveform", "stft", "mel")})
        if envelope is not None:
            values["envelope"] = envelope.detach()
        if adv is not None:
            values.update({k: v.detach() for k, v in adv.items()})
        read = dict(zip(values, _host_values(values.values())))
        record = {k: read[k] for k in ("loss", "recon", "perceptual", "vq")}
        record.update(clamped=losses["clamped"], n_q=int(out["n_q"]), grad_norm=read["grad_norm"])
        record.update(grad_norm_encoder=read["grad_norm_encoder"], grad_norm_z=read["grad_norm_z"])
        record.update(lr=optimizer.param_groups[0]["lr"], output_scale=read.get("output_scale"))
        record.update(output_peak=read["output_peak"], input_peak=read["input_peak"])
        record.update({k: v for k, v in read.items() if k not in record})
        if adv is not None:
            record["grad_norm_discriminator"] = d_norm
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

    def finish(self, step: int) -> RunResult:
        """The run's result, once every rank is done."""
        self.result.step, self.result.seconds = step, time.perf_counter() - self.t0
        if self.distributed:
            dist.barrier()
        return self.result


def _scale(model) -> float | None:
    s = model.decoder.output_scale
    return float(s.detach()) if s is not None else None


def _host_values(tensors) -> list:
    """0-d tensors (or numbers) as Python floats, in one device-to-host transfer: each value is cast to float64
    on its device (exact for float32, bfloat16 and float16), stacked, and read once."""
    tensors = [t if isinstance(t, torch.Tensor) else torch.tensor(float(t), dtype=torch.float64) for t in tensors]
    if not tensors:
        return []
    device = tensors[0].device
    return torch.stack([t.detach().reshape(()).to(device, torch.float64) for t in tensors]).tolist()


def _nonfinite(what: str, cfg: TrainConfig, run_dir, result: RunResult):
    if cfg.on_nonfinite == "skip":
        result.skipped_steps += 1
        print(f"warning: {what}; step skipped (--on_nonfinite skip)", file=sys.stderr)
        return
    where = f"; last good checkpoint kept in {run_dir}" if run_dir is not None else ""
    raise TrainingDiverged(f"training stopped: {what}{where}")
