"""``python -m telucodec``: train, encode, decode, fit-envelope, fit-entropy, bench, demo."""

from telucodec.cli.commands import main

__all__ = ["main"]
