"""The first shipped codec (one speaker): how it was trained, on which data, and the split it is judged on.

The book's chapters use this split: the embedded corpus's held-out sentences. The codec shipped now
(results/pretrained/) trained on a speaker list instead (its model card); the first one, kept under
results/one-speaker/ (telucodec.coding.inference.ONE_SPEAKER), was trained with the working recipe
(telucodec.training.recipes) on the embedded eSpeak NG corpus (12 minutes) plus a folder of real Telugu speech, both split by file with
SHIPPED_VAL_FRACTION of the files held out, in two phases: 4800 steps, then 1500 more from those weights with a
fresh optimizer (the reconstruction-only control of notebook 16, which beat its adversarial twin). 59 minutes of
training on one CPU thread in all. Envelope codebooks (telucodec.codec.envelope) were then fitted on the same training
split in under a minute (SHIPPED_ENVELOPE_COMMAND); they change no weight of the codec, and
telucodec.coding.inference.without_envelope(telucodec.load(ONE_SPEAKER)) is the codec as trained. Its quality is
always measured on held-out files only.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

SHIPPED_PRESET = "cpu"
SHIPPED_VAL_FRACTION = 0.25
SHIPPED_STEPS = 4800 + 1500
SHIPPED_COMMAND = (
    "OMP_NUM_THREADS=1 python -m telucodec train --recipe working --preset cpu "
    "--extra_data_dir <telugu-cv-dev> --val_fraction 0.25 --steps 4800 --keep_every 500 "
    "--checkpoint_dir checkpoints --experiment_name shipped --resume"
)  # phase 1 (phase 2: notebook 16)
SHIPPED_ENVELOPE_COMMAND = (
    "python -m telucodec fit-envelope results/one-speaker/telucodec.safetensors "
    "--data_dir <telugu-cv-dev> --val_fraction 0.25"
)  # scripts/ship_envelope.sh


def data_spec(val_fraction: float = SHIPPED_VAL_FRACTION):
    """The data settings the shipped model was trained with (12-minute corpus, 25 % of files held out), or the
    same with another `val_fraction`."""
    from telucodec.data.folders import spec_for
    from telucodec.training.recipes import recipe

    r = recipe("working", SHIPPED_PRESET)
    return spec_for(r.codec, replace(r.train, val_fraction=val_fraction))


def clips(split: str, extra_data_dir=None, corpus: bool = True) -> list:
    """The shipped model's clips of one split: the embedded corpus (if `corpus`) plus `extra_data_dir`."""
    from telucodec.data.folders import load_dataset

    spec, out = data_spec(), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if corpus:
            out += list(load_dataset(None, spec, split))
        if extra_data_dir is not None:
            out += list(load_dataset(extra_data_dir, spec, split))
    return out
