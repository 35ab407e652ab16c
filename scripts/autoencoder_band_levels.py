"""Is the shipped model's 1-4 kHz smearing the quantizer's doing? `band_level_by_loudness` of the bypassed
autoencoder (decoder(encoder(x))) beside the 12-stage decode, on the model card's 10 tuning clips (first 6 s).

    python scripts/autoencoder_band_levels.py <telugu-cv-dev> > results/cpu/finetune_levers/autoencoder_band_levels.txt
"""

import sys
import warnings
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(data_dir: str):
    warnings.simplefilter("ignore")
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from telucodec.coding.inference import load
    from telucodec.config import preset
    from telucodec.data.folders import load_dataset, spec_for
    from telucodec.evaluation.metrics import band_level_by_loudness
    from telucodec.evaluation.scoring import crop_clip, reconstruct

    p = preset("cpu")
    clips = list(load_dataset(data_dir, spec_for(p.codec, replace(p.train, val_fraction=0.25)), "val"))[:10]
    from telucodec.coding.inference import ONE_SPEAKER, without_envelope

    codec = without_envelope(load(ONE_SPEAKER)).codec.eval()  # the codec as trained, without the envelope codebooks
    xs, bypassed, quantized = [], [], []
    with torch.no_grad():
        for c in clips:
            x = crop_clip(c, 16000, "first", 6.0)
            padded, n = codec._pad(torch.from_numpy(x)[None, None])
            xs.append(x)
            bypassed.append(codec.decoder(codec.encoder(padded))[0, 0, :n].numpy())
            quantized.append(reconstruct(codec, x, 12)[: len(x)])
    x = np.concatenate(xs)
    print(
        "1-4 kHz level error (dB) per bin of the input's level in that band:",
        [r["reference level (dB)"] for r in band_level_by_loudness(x, x)],
    )
    for name, ys in (("autoencoder (no VQ)", bypassed), ("12 stages (6 kbps)", quantized)):
        print(f"{name:20s}", [round(r["level error (dB)"], 1) for r in band_level_by_loudness(x, np.concatenate(ys))])


if __name__ == "__main__":
    main(sys.argv[1])
