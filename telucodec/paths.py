"""Where TeluCodec keeps generated data (cache) and committed results."""

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
RESULTS_DIR = REPO_DIR / "results"


def cache_dir() -> Path:
    """The cache folder: $TELUCODEC_CACHE, or ~/.cache/telucodec (also when the variable is set but empty, which
    would otherwise mean the current folder). Created on first use."""
    path = Path(os.environ.get("TELUCODEC_CACHE") or Path.home() / ".cache" / "telucodec").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
