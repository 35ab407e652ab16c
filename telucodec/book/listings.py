"""Listings: the package's own source of a function or class shown in a notebook, whole or around one line."""

from __future__ import annotations

import inspect


def show_source(obj, contains: str | None = None, context: int = 0):
    """Display the package's own source of a function or class (whole, or only the lines around `contains`)."""
    from IPython.display import Code, display

    src = inspect.getsource(obj)
    if contains:
        lines = src.splitlines()
        keep = [i for i, l in enumerate(lines) if contains in l]
        picked = sorted({j for i in keep for j in range(max(0, i - context), min(len(lines), i + context + 1))})
        src = "\n".join(lines[j] for j in picked)
    display(Code(src, language="python"))
