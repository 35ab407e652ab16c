"""Where a trained codec loses its quality: oracle swaps between its output and the input (chapter 15).

    python scripts/envelope_oracle.py --model results/one-speaker/telucodec.safetensors \
        --data_dir <telugu-cv-dev> --out results/cpu/envelope_oracle/shipped.json

On the first 10 held-out real clips of the shipped model's split (first 6 s; the model card's tuning clips), the
codec's 6 kbps output is scored (PESQ-WB, STOI, SI-SNR, mel distance) as it is, and again after one property of
it is replaced by the input's, in an STFT (window 512, hop 128; 640/160 for the band envelopes):

* the magnitude, or the phase;
* the spectral envelope (log magnitude smoothed over 11 bins, ~340 Hz) or the fine structure around it;
* the magnitude in one band only (under 1 kHz, 1-4 kHz, above 4 kHz);
* the level of each of B mel bands (B = 8, 16, 32) at 100, 50 or 25 frames/s, keeping the codec's fine structure
  and phase: what an envelope post-filter (telucodec.codec.postfilter) could at best do at that resolution.

It also reports, per band, how the codec's band level follows the input's frame by frame (slope and correlation
over the frames within 50 dB of the loudest). These are oracles (they use the input), not codecs: they say where the
codec's error lies and what fixing it would be worth, not what a codec can do at 6 kbps.
"""

import argparse
import json
import sys
import warnings
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data_dir", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    from telucodec.codec.spectral import mel_band_filters
    from telucodec.coding.inference import load
    from telucodec.config import preset
    from telucodec.data.folders import load_dataset, spec_for
    from telucodec.evaluation import metrics
    from telucodec.evaluation.metrics import loud_frames
    from telucodec.evaluation.scoring import crop_clip, reconstruct

    p = preset("cpu")
    clips = list(load_dataset(args.data_dir, spec_for(p.codec, replace(p.train, val_fraction=0.25)), "val"))[:10]
    from telucodec.coding.inference import without_envelope

    model = without_envelope(
        load(args.model)
    )  # the codec as trained (the shipped model without its envelope codebooks)
    sr = 16000

    def stft(x, n, h):
        return torch.stft(torch.from_numpy(x).float(), n, h, window=torch.hann_window(n), return_complex=True)

    def istft(z, n, h, length):
        return torch.istft(z, n, h, window=torch.hann_window(n), length=length).numpy()

    def swaps(x, y):
        n = len(x)
        X, Y = stft(x, 512, 128), stft(y, 512, 128)
        f = torch.fft.rfftfreq(512, 1 / sr)[:, None]
        phase = torch.exp(1j * Y.angle())
        lx, ly = (X.abs() + 1e-7).log(), (Y.abs() + 1e-7).log()
        smooth = lambda m: F.avg_pool1d(m.T[:, None], 11, 1, 5, count_include_pad=False)[:, 0].T
        ex, ey = smooth(lx), smooth(ly)
        out = {
            "codec as it is": y,
            "input's magnitude, codec's phase": istft(X.abs() * phase, 512, 128, n),
            "codec's magnitude, input's phase": istft(Y.abs() * torch.exp(1j * X.angle()), 512, 128, n),
            "input's envelope, codec's fine structure": istft(torch.exp(ex + ly - ey) * phase, 512, 128, n),
            "codec's envelope, input's fine structure": istft(torch.exp(ey + lx - ex) * phase, 512, 128, n),
        }
        for name, band in (
            ("under 1 kHz", f < 1000),
            ("1-4 kHz", (f >= 1000) & (f < 4000)),
            ("above 4 kHz", f >= 4000),
        ):
            out[f"input's magnitude {name} only"] = istft(torch.where(band, X.abs(), Y.abs()) * phase, 512, 128, n)
        X, Y = stft(x, 640, 160), stft(y, 640, 160)
        for bands in (8, 16, 32):
            fb, spread = mel_band_filters(640, bands, sr, "cpu")
            for pool in (1, 2, 4):
                e_x, e_y = fb.T @ X.abs().pow(2), fb.T @ Y.abs().pow(2)
                if pool > 1:
                    e_x = F.avg_pool1d(e_x[None], pool, pool, ceil_mode=True)[0]
                    e_y = F.avg_pool1d(e_y[None], pool, pool, ceil_mode=True)[0]
                gain = 0.5 * (torch.log(e_x + 1e-10) - torch.log(e_y + 1e-10))
                if pool > 1:
                    gain = F.interpolate(gain[None], size=X.shape[-1], mode="linear", align_corners=False)[0]
                out[f"input's level in {bands} bands at {100 // pool} frames/s"] = istft(
                    Y * torch.exp(spread @ gain), 640, 160, n
                )
        return out

    scores, levels = {}, {}
    for c in clips:
        x = crop_clip(c, sr, "first", 6.0)
        y = reconstruct(model.codec, x, model.codec.config.n_q)
        for name, v in swaps(x, y).items():
            scores.setdefault(name, []).append(
                {
                    "pesq_wb": metrics.pesq_wb(x, v, sr),
                    "stoi": metrics.stoi(x, v, sr),
                    "si_snr_db": metrics.si_snr(x, v),
                    "mel_distance": metrics.mel_distance(x, v, sr),
                }
            )
        px, py = (stft(s, 512, 128).abs().pow(2).numpy() for s in (x, y))
        f = np.fft.rfftfreq(512, 1 / sr)
        for lo, hi in ((100, 1000), (1000, 2000), (2000, 4000), (4000, 8000)):
            band = (f >= lo) & (f < hi)
            levels.setdefault(f"{lo}-{hi} Hz", ([], []))
            levels[f"{lo}-{hi} Hz"][0].append(10 * np.log10(px[band].sum(0) + 1e-10))
            levels[f"{lo}-{hi} Hz"][1].append(10 * np.log10(py[band].sum(0) + 1e-10))
    table = {name: {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} for name, rows in scores.items()}
    following = {}
    for name, (lx, ly) in levels.items():
        lx, ly = np.concatenate(lx), np.concatenate(ly)
        active = loud_frames(lx, 50.0)
        slope = float(np.polyfit(lx[active], ly[active], 1)[0])
        following[name] = {
            "slope": slope,
            "correlation": float(np.corrcoef(lx[active], ly[active])[0, 1]),
            "rms_error_db": float(np.sqrt(np.mean((ly[active] - lx[active]) ** 2))),
        }
    result = {
        "model": args.model,
        "clips": len(clips),
        "crop": "first 6 s",
        "bitrate": "6 kbps",
        "data": f"{Path(args.data_dir).name}, held-out files (val_fraction 0.25), first 10",
        "oracle_swaps": table,
        "band_level_following": following,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    for name, s in table.items():
        print(
            f"{name:52s} PESQ-WB {s['pesq_wb']:.2f}  STOI {s['stoi']:.3f}  SI-SNR {s['si_snr_db']:5.1f} dB  mel {s['mel_distance']:.3f}"
        )
    for name, s in following.items():
        print(
            f"band level {name:14s} slope {s['slope']:.2f}  correlation {s['correlation']:.3f}  rms error {s['rms_error_db']:.1f} dB"
        )


if __name__ == "__main__":
    main()
