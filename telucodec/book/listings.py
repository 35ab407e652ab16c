"""Listings: the package's own source of a function or class shown in a notebook, whole or around one line."""

from __future__ import annotations

import inspect


def show_source(obj, contains: str | None = None, context: int = 0):
    """Display the package's own source of a function or class (whole, or only the lines around `contains`).
    A `contains` that no line holds is an error, not an empty box: the listing went stale when the code moved."""
    from IPython.display import Code, display

    src = inspect.getsource(obj)
    if contains:
        lines = src.splitlines()
        keep = [i for i, l in enumerate(lines) if contains in l]
        if not keep:
            name = getattr(obj, "__qualname__", getattr(obj, "__name__", repr(obj)))
            raise ValueError(f"show_source: no line of {name} contains {contains!r}; the listing is stale")
        picked = sorted({j for i in keep for j in range(max(0, i - context), min(len(lines), i + context + 1))})
        src = "\n".join(lines[j] for j in picked)
    display(Code(src, language="python"))
