"""Pin the numerics before any notebook kernel starts: kernels inherit this environment, so stored notebook
outputs re-validate bit for bit on the same machine (one thread, fixed CPU code paths, no progress bars)."""
import os

for key, value in {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MKL_CBWR": "COMPATIBLE",
    "PYTHONHASHSEED": "0",
    "TQDM_DISABLE": "1",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    "TELUCODEC_PROFILE": os.environ.get("TELUCODEC_PROFILE", "ci"),
}.items():
    os.environ.setdefault(key, value)
