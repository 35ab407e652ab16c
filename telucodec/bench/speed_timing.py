"""Timing for the speed benchmark: wall and process-CPU seconds of one call, and the encode, decode and
training-step times of several models, interleaved so that a passing background load hits them alike."""

from __future__ import annotations

import statistics
import time

import numpy as np

from telucodec.bench.common import synthetic_speech
from telucodec.errors import TeluCodecError


def _sync(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


CPU_TIMES: list = []  # (wall, process CPU) of every timed call, to spot a machine that is busy elsewhere


def timed(fn, device, cpu_out: list | None = None) -> float:
    """Wall-clock seconds of fn(); its process CPU seconds are appended to cpu_out (and CPU_TIMES)."""
    _sync(device)
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    _sync(device)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    CPU_TIMES.append((wall, cpu))
    if cpu_out is not None:
        cpu_out.append(cpu)
    return wall


def time_inference(runners: dict, seconds: float, repeats: int, device) -> dict:
    """Encode and decode times for every model, interleaved: each repeat times model A, then model B, so
    that a background load that comes and goes hits both alike.  One warm-up each; medians reported."""
    import torch

    state = {}
    with torch.inference_mode():
        for key, runner in runners.items():
            n = int(round(seconds * runner.sample_rate))
            wav = torch.from_numpy(synthetic_speech(seconds, runner.sample_rate, seed=7))[None, None].to(device)
            runner.module.to(device).eval()
            codes = runner.encode(wav)  # warm-up
            out = runner.decode(codes, n)
            if out.shape[-1] != n:
                raise TeluCodecError(f"{key}: decoded {out.shape[-1]} samples for {n}")
            state[key] = (wav, codes, n, {"encode": [], "decode": [], "encode_cpu": [], "decode_cpu": []})
        for _ in range(repeats):
            for key, runner in runners.items():
                wav, codes, n, t = state[key]
                t["encode"].append(timed(lambda: runner.encode(wav), device, t["encode_cpu"]))
            for key, runner in runners.items():
                wav, codes, n, t = state[key]
                t["decode"].append(timed(lambda: runner.decode(codes, n), device, t["decode_cpu"]))
    result = {}
    for key, (_, _, _, t) in state.items():
        t_enc, t_dec = statistics.median(t["encode"]), statistics.median(t["decode"])
        c_enc, c_dec = statistics.median(t["encode_cpu"]), statistics.median(t["decode_cpu"])
        result[key] = {
            "encode_s": t_enc,
            "decode_s": t_dec,
            "encode_rtf": seconds / t_enc,
            "decode_rtf": seconds / t_dec,
            "round_trip_rtf": seconds / (t_enc + t_dec),
            "encode_all_s": t["encode"],
            "decode_all_s": t["decode"],
            "encode_cpu_s": c_enc,
            "decode_cpu_s": c_dec,
            "round_trip_rtf_cpu_time": seconds / (c_enc + c_dec) if c_enc + c_dec > 0 else None,
        }
    return result


def time_train_step(runners: dict, batch: int, seconds: float, repeats: int, device, warmup: int = 2) -> dict:
    """Time of one training step (forward, backward, AdamW step) per model, interleaved like inference."""
    import torch

    state = {}
    for key, runner in runners.items():
        wav = torch.from_numpy(
            np.stack([synthetic_speech(seconds, runner.sample_rate, seed=20 + i) for i in range(batch)])
        )[:, None].to(device)
        module = runner.module.to(device).train()
        opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)

        def step(runner=runner, wav=wav, opt=opt):
            opt.zero_grad(set_to_none=True)
            loss = runner.train_loss(wav)
            loss.backward()
            opt.step()

        for _ in range(warmup):
            step()
        state[key] = (step, [])
    for _ in range(repeats):
        for key, (step, times) in state.items():
            times.append(timed(step, device))
    result = {}
    for key, runner in runners.items():
        runner.module.eval()
        times = state[key][1]
        result[key] = {
            "train_step_s": statistics.median(times),
            "train_step_all_s": times,
            "batch": batch,
            "segment_seconds": seconds,
        }
    return result
