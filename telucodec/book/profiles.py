"""The book's profile switch and seeded set-up: "ci" (quick, CPU, what the stored outputs come from) unless
TELUCODEC_PROFILE=full is set or a CUDA GPU is present; `setup` seeds everything and quiets known-harmless warnings."""

from __future__ import annotations

import os
import random
import warnings
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Profile:
    name: str  # "ci" or "full"
    preset: str  # model/training preset used by the notebooks' live runs
    steps: int  # optimizer steps of one controlled-experiment run
    device: str
    description: str


PROFILES = {
    "ci": dict(preset="ci", steps=200, description="quick CPU profile: stored outputs come from it"),
    "full": dict(preset="full", steps=3000, description="full profile: the GPU model, thousands of steps"),
}


def current_profile_name() -> str:
    name = os.environ.get("TELUCODEC_PROFILE")
    if name:
        if name not in PROFILES:
            raise ValueError(f"TELUCODEC_PROFILE must be one of {', '.join(PROFILES)}, not {name!r}")
        return name
    return "full" if torch.cuda.is_available() else "ci"


def setup(seed: int = 0) -> Profile:
    """Seed everything, pin CPU threads in the ci profile, make plots PNG and quiet known-harmless warnings."""
    name = current_profile_name()
    device = "cuda" if (name == "full" and torch.cuda.is_available()) else "cpu"
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if name == "ci":
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.set_printoptions(precision=4, sci_mode=False)
    os.environ.setdefault("TQDM_DISABLE", "1")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        import matplotlib

        matplotlib.rcParams.update(
            {
                "figure.dpi": 90,
                "savefig.dpi": 90,
                "figure.figsize": (8, 3.2),
                "axes.grid": True,
                "grid.alpha": 0.3,
                "axes.spines.top": False,
                "axes.spines.right": False,
            }
        )
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png")
    except ImportError:
        pass
    spec = PROFILES[name]
    return Profile(name, spec["preset"], spec["steps"], device, spec["description"])
