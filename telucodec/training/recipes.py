"""Training recipes: the story's codec, and the working recipe that makes it learn on a CPU.

A recipe is the seven fixes plus named *ingredients*, each a field of CodecConfig or TrainConfig whose default is
the story's behaviour. `recipe("working", "cpu")` turns every ingredient on; `recipe("working", "cpu",
without=("balancer",))` turns one off, so the book can measure what each is worth. No ingredient changes what
a fix does: the fixes stay exactly as `telucodec.fixes` describes them.

| ingredient            | what it does                                                                    |
|-----------------------|---------------------------------------------------------------------------------|
| `working_loss`        | waveform L1 + multi-resolution STFT + log10 mel, float32 (instead of the story's) |
| `balancer`            | each of those terms gets a fixed share of the gradient at the decoder output    |
| `weight_norm`         | weight normalisation on every convolution                                       |
| `kmeans_init`         | codebooks start as k-means centroids of 8192 real latent vectors                |
| `relative_dead_codes` | a code is dead below 5 % of the mean usage (not below 0.5 uses per batch)       |
| `strong_commitment`   | commitment weight 1.0 (EnCodec's), not 0.25: the latent stays near its codes    |
| `loudness`            | training clips normalised to -23 LUFS, crops jittered by +-6 dB                 |
| `long_crops`          | 1 s training crops (the story's ci preset uses 0.5 s)                           |
| `lr_schedule`         | cosine decay of the learning rate to 10 % at the last step                      |
| `relative_floor`      | (on request: `with_`, `--with`) the working loss's log spectra floored 60 dB    |
|                       | under each example's loudest bin, not at an absolute 1e-5 (telucodec.codec.spectral)  |
| `pre_emphasis`        | (on request) every working-loss term compares y[n] - 0.9 y[n-1]: errors above   |
|                       | 1 kHz, where the shipped model is 13-16 dB too quiet, weigh like the low band's |
| `low_band_waveform`   | (on request) the waveform L1 compares only the band under 1 kHz: above it, where |
|                       | the phase is hard to predict, it would pull the output towards silence          |
| `istft_head`          | (on request) the decoder keeps its first upsampling block, then predicts a log  |
|                       | magnitude and a phase per STFT bin and an inverse STFT makes the waveform       |
| `envelope_postfilter` | (on request) a small network predicts each band's level (32 mel bands, 100 per |
|                       | second) from the codes and re-shapes the decoder's output to it; its own loss   |
|                       | (telucodec.codec.postfilter), which the waveform L1 never sees                        |
| `level_augment`       | (on request; the "voices" recipe) training clips at -23 LUFS, crops jittered by +-20 dB:    |
|                       | the codec meets speech from -43 to -3 LUFS (instead of `loudness`'s +-6 dB)     |
| `vocos_head`          | (on request; the "voices" recipe) a frame-rate decoder: ConvNeXt blocks, then an inverse STFT        |
|                       | (telucodec.codec.backbone)                                                            |
| `adversarial`         | (the "adversarial" recipe only) MS-STFT and multi-period discriminators, with   |
|                       | hinge and feature-matching losses balanced beside the reconstruction terms      |

The "adversarial" recipe is the working recipe plus discriminators (telucodec.training.adversarial). It is meant as a
fine-tune of a trained codec (`--init_from`): see notebooks/16_adversarial_training.ipynb.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from telucodec.config import CodecConfig, TrainConfig
from telucodec.config import preset as get_preset
from telucodec.fixes import Fixes

# ingredient -> (CodecConfig changes, TrainConfig changes) that turn it ON
INGREDIENTS = {
    "working_loss": ({}, {"loss": "working"}),
    "balancer": ({}, {"balancer": True}),
    "weight_norm": ({"weight_norm": True}, {}),
    "kmeans_init": ({"kmeans_buffer": 8192}, {}),
    "relative_dead_codes": ({"dead_code_relative": 0.05}, {}),
    "strong_commitment": ({"commitment_weight": 1.0}, {}),
    "loudness": ({}, {"loudness_lufs": -23.0, "gain_jitter_db": 6.0}),
    "long_crops": ({}, {"segment_seconds": 1.0}),
    "lr_schedule": ({}, {"lr_schedule": "cosine"}),
    "adversarial": ({}, {"discriminators": ("msstft", "mpd")}),
    "relative_floor": ({}, {"spectral_floor_db": 60.0}),
    "pre_emphasis": ({}, {"pre_emphasis": 0.9}),
    "low_band_waveform": ({}, {"waveform_lowpass_hz": 1000.0}),
    "istft_head": ({"istft_blocks": 1}, {}),
    "envelope_postfilter": ({"postfilter_bands": 32}, {}),
    "level_augment": ({}, {"loudness_lufs": -23.0, "gain_jitter_db": 20.0}),
    "vocos_head": ({"head": "vocos"}, {}),
}

# measured (chapters 14 and 15), not in a recipe: turn on with `with_` (`--with`)
OPTIONAL = (
    "relative_floor",
    "pre_emphasis",
    "low_band_waveform",
    "istft_head",
    "envelope_postfilter",
    "level_augment",
    "vocos_head",
)
WORKING = tuple(i for i in INGREDIENTS if i not in ("adversarial", *OPTIONAL))
RECIPES = {
    "story": (),  # the codec as the story built it (with whichever fixes you pass)
    "working": WORKING,  # every reconstruction ingredient on
    "adversarial": WORKING + ("adversarial",),  # and discriminators
    # the codec for unseen voices (with the cpu-deep preset): no pause-dominated floor, the waveform term only under
    # 1 kHz where the phase is predictable, levels +-20 dB around -23 LUFS, a frame-rate decoder (vocos_head)
    "voices": tuple(i for i in WORKING if i != "loudness")
    + ("relative_floor", "low_band_waveform", "level_augment", "vocos_head"),
}
# quantizer hygiene for the voices recipe: EMA codebooks without the codebook loss (fix 1 steps codebooks that the
# next EMA update overwrites), one straight-through estimator after the loop (the encoder's gradient x 1, not x n_q,
# whatever quantizer dropout picks), averaged VQ losses; no output scale (the inverse STFT sets the level)
VOICES_FIXES = Fixes.all().with_(codebook_loss=False, per_step_ste=False, output_scale=False)


@dataclass(frozen=True)
class Recipe:
    name: str
    codec: CodecConfig
    train: TrainConfig
    fixes: Fixes
    ingredients: tuple


def recipe(name: str = "working", preset: str = "cpu", without=(), fixes: Fixes | None = None, with_=()) -> Recipe:
    """The preset's configurations with the recipe's ingredients on (minus `without`, plus `with_`). The working
    recipe trains with all seven fixes on unless `fixes` says otherwise; the story recipe with none."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    unknown = [w for w in (*without, *with_) if w not in INGREDIENTS]
    if unknown:
        raise ValueError(f"unknown ingredient(s) {', '.join(unknown)}; choose from {', '.join(INGREDIENTS)}")
    p = get_preset(preset)
    ccfg, tcfg = p.codec, p.train
    on = tuple(i for i in RECIPES[name] if i not in without) + tuple(i for i in with_ if i not in RECIPES[name])
    for ingredient in on:
        codec_changes, train_changes = INGREDIENTS[ingredient]
        ccfg, tcfg = replace(ccfg, **codec_changes), replace(tcfg, **train_changes)
    if "balancer" in on and "working_loss" not in on:
        raise ValueError("the balancer balances the working loss's terms: keep working_loss on")
    if fixes is None:
        fixes = Fixes.none() if name == "story" else VOICES_FIXES if name == "voices" else Fixes.all()
    label = name if not without else f"{name}-" + "-".join(without)
    extra = [i for i in with_ if i not in RECIPES[name]]
    label = label if not extra else f"{label}+" + "+".join(extra)
    return Recipe(label, ccfg, tcfg, fixes, on)


def configuration(run: str, preset: str = "ci") -> Recipe:
    """A named run of the working-recipe ablation: "working" (every ingredient, all seven fixes),
    "working-<ingredient>" (that ingredient off; "working-working_loss" turns the balancer off with it) or "working-<fix>" (the recipe with that one fix off).
    Used by `python -m telucodec experiments --recipe working --runs ...`."""
    from telucodec.fixes import SEVEN

    if run == "working":
        return recipe("working", preset)
    if run.startswith("working-"):
        name = run[len("working-") :]
        if name == "working_loss":  # the balancer only balances the working loss: both go
            return replace(recipe("working", preset, without=("working_loss", "balancer")), name=run)
        if name in INGREDIENTS and name != "adversarial":
            return replace(recipe("working", preset, without=(name,)), name=run)
        if name in SEVEN:
            r = recipe("working", preset, fixes=Fixes.parse(f"all-{name}"))
            return replace(r, name=run)
        if name == "seven_fixes":  # the recipe on the story's baseline: all seven fixes off
            return replace(recipe("working", preset, fixes=Fixes.none()), name=run)
    raise ValueError(
        f"unknown run {run!r}: use 'working', 'working-<ingredient>' ({', '.join(WORKING)}) "
        f", 'working-<fix>' ({', '.join(SEVEN)}) or 'working-seven_fixes'"
    )


WORKING_ABLATION = ["working"] + [f"working-{i}" for i in WORKING]
