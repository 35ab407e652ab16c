"""Issue 10: every notebook again, under a second numeric path.

The stored notebook outputs that nbval compares (the cells tagged ``nbval-check-output``) must hold on any
machine, and every verdict a chapter states is an assert. Another processor runs other CPU kernels, which round
differently, and a 200-step training run turns a one-ulp difference into a slightly different model. To see that
on your own machine, this test runs all notebooks once more, in a separate pytest session, with
``ATEN_CPU_CAPABILITY`` set to another kernel set than the one this session uses (``avx2`` on an AVX-512 machine,
``default`` on an AVX2 one; ``default`` is the plain C++ path, about twice as slow). A checked output or an
assert that depends on the rounding then fails here, before it fails on someone else's machine.

The run cache (``telucodec.book.run``) keys runs by the CPU capability too, so the second path trains its own runs
and never reuses those of the first; both stay cached, so a warm rerun is quick.

The notebooks are split between this file and ``test_numeric_paths_part{2,3,4}.py``, so that two workers share them.
Set ``TELUCODEC_SECOND_NUMERIC_PATH=off`` to skip it (for a quick local run), or to a capability name to choose it.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(str(p.relative_to(REPO)) for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _capability(requested: str | None) -> str:
    """The CPU capability torch really uses when ATEN_CPU_CAPABILITY=requested (None: this machine's best)."""
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    if requested:
        env["ATEN_CPU_CAPABILITY"] = requested
    out = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip()


def second_path() -> str | None:
    """The capability to run the notebooks under: the first of avx2, default that differs from this session's."""
    choice = os.environ.get("TELUCODEC_SECOND_NUMERIC_PATH", "auto").lower()
    if choice in ("off", "0", "no", "none"):
        return None
    if choice != "auto":
        return choice
    import torch

    current = torch.backends.cpu.get_cpu_capability()
    for candidate in ("avx2", "default"):
        if _capability(candidate) != current:
            return candidate
    return None


def run_under_second_path(notebooks: list):
    capability = second_path()
    if capability is None:
        pytest.skip("second numeric path switched off (TELUCODEC_SECOND_NUMERIC_PATH=off)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT"))}
    env["ATEN_CPU_CAPABILITY"] = capability
    env["TELUCODEC_NESTED_SESSION"] = "1"  # the repository check of conftest.py runs in this (outer) session
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        "--nbval-lax",
        "--nbval-current-env",
        "--nbval-cell-timeout",
        "600",
        *notebooks,
    ]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=3000)
    tail = (result.stdout + result.stderr)[-12000:]
    assert result.returncode == 0, (
        f"the notebooks fail under ATEN_CPU_CAPABILITY={capability} (torch uses {_capability(capability)}):\n{tail}"
    )


# Four quarters in four files, so that `--dist loadfile` (one file runs on one worker) can share them out between
# the two workers evenly; conftest.py collects them first (longest first).
PARTS = 4


def test_notebooks_under_a_second_numeric_path_part1():
    run_under_second_path(NOTEBOOKS[0::PARTS])
