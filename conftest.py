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


# Issue 6: "nothing is written outside the project's cache and results folders". Every file the test session
# (package tests and notebooks alike) leaves in the repository must be under results/ or a tool cache; anything
# else fails the run, with the paths named.
import subprocess
from pathlib import Path

_ALLOWED = ("results/", ".pytest_cache/", ".hypothesis/", "_build/")
_REPO = Path(__file__).resolve().parent


def _repo_files():
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all"],
            cwd=_REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return set(out.stdout.splitlines()) if out.returncode == 0 else None


def pytest_sessionstart(session):
    # tests/test_numeric_paths.py runs the notebooks in a nested session; the outer session's check spans it.
    if os.environ.get("TELUCODEC_NESTED_SESSION"):
        return
    session.config._telucodec_repo_before = _repo_files()


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_telucodec_repo_before", None)
    after = _repo_files()
    if before is None or after is None:
        return
    stray = sorted(line[3:] for line in after - before if not line[3:].startswith(_ALLOWED))
    if stray:
        print("\nerror: the test session wrote files into the repository outside results/: " + ", ".join(stray))
        session.exitstatus = 1


def pytest_collection_modifyitems(session, config, items):
    """Longest first: the two second-numeric-path files (each reruns half the notebooks, ~10 min) are collected
    before everything else, so that `-n 2 --dist loadfile` starts them at once and the other files fill in beside
    them, instead of leaving one worker idle while the other finishes a late half."""
    items.sort(key=lambda item: 0 if item.nodeid.startswith("tests/test_numeric_paths") else 1)
