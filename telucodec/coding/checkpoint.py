"""Safe, atomic checkpoints.

Training checkpoints (``.pt``)
------------------------------
:func:`save_checkpoint` stores a nested ``dict`` of tensors, ints, floats, bools, strings,
``None``, lists, tuples and dicts (model and optimizer ``state_dict``, GradScaler state, RNG states
as uint8 tensors, the step, the config as a plain dict) with ``torch.save``.  Anything else
(a dataclass, a numpy array, a custom class) is refused *at save time*, with the key path named,
because it could not be loaded back safely.  Numpy scalars are converted to Python numbers.

Writing is atomic: the file is written to ``<path>.tmp-<pid>`` in the same folder, flushed and
``fsync``-ed, then moved over ``path`` with ``os.replace``.  A crash or error at any moment leaves
either the old file or the new one at ``path``, never a partial one.

Next to each checkpoint a sidecar ``<path>.sha256`` holds its SHA-256 (in ``sha256sum`` format, so
``sha256sum -c`` works).  It is needed: the zip container of ``torch.save`` only catches
truncation and damage to its structure; most single-bit flips (in tensor data, padding, ...) load
without complaint.  The sidecar is written atomically as well; the old sidecar is removed before
the new checkpoint replaces the old one, so a crash can leave a checkpoint without a sidecar
(loaded unverified) but never a checkpoint with a stale one.

:func:`load_checkpoint` verifies the sidecar when present and always loads with
``torch.load(weights_only=True)``: a file that would have to import and call arbitrary code (a
pickled object with ``__reduce__``) is refused with :class:`~telucodec.errors.CheckpointError`
before any of that code runs.

Shipped weights (``.safetensors``)
----------------------------------
:func:`save_weights_safetensors` / :func:`load_weights_safetensors` store plain tensors plus
string metadata in the safetensors format (no pickle at all).  A SHA-256 over names, dtypes,
shapes, bytes and metadata is stored in the metadata key ``telucodec_sha256`` and checked on load.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from telucodec.errors import CheckpointError

__all__ = [
    "CheckpointWarning",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_path",
    "latest_checkpoint",
    "list_checkpoints",
    "keep_last",
    "load_latest_good",
    "save_weights_safetensors",
    "load_weights_safetensors",
    "sha256_file",
]

SIDECAR_SUFFIX = ".sha256"
SAFETENSORS_HASH_KEY = "telucodec_sha256"


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped (corrupted or unsafe); the message names the file."""


# ------------------------------------------------------------------------------------ helpers
def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tmp_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _unlink_quietly(p: Path) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_bytes_durably(tmp: Path, data: bytes) -> None:
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def sha256_file(path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


_PLAIN_SCALARS = (type(None), bool, int, float, complex, str, bytes)
_PLAIN_TORCH = (torch.Tensor, torch.dtype, torch.device, torch.Size)


def _plain(obj, where: str):
    """Return ``obj`` with numpy scalars converted; raise if it holds non-plain objects."""
    if isinstance(obj, np.generic):  # before the scalar check: np.float64 is a float subclass
        return obj.item()
    if type(obj) in _PLAIN_SCALARS or isinstance(obj, _PLAIN_TORCH):  # exact types: no str/int subclasses
        if isinstance(obj, torch.Tensor) and type(obj) not in (torch.Tensor, torch.nn.Parameter):
            raise CheckpointError(f"cannot save {where}: tensor subclass {type(obj).__name__} is not plain weights")
        return obj
    if isinstance(obj, (dict, OrderedDict)):
        if type(obj) not in (dict, OrderedDict):
            raise CheckpointError(f"cannot save {where}: {type(obj).__name__} is not a plain dict")
        out = type(obj)()
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise CheckpointError(f"cannot save {where}: key {k!r} is not a str or int")
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    if type(obj) in (list, tuple):
        return type(obj)(_plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    raise CheckpointError(
        f"cannot save {where}: {type(obj).__module__}.{type(obj).__qualname__} is not plain data "
        "(use tensors, numbers, strings, None, lists and dicts)"
    )


# ---------------------------------------------------------------------------- save and load
def save_checkpoint(path, state: dict, *, sidecar: bool = True) -> Path:
    """Atomically write ``state`` to ``path`` (and its ``.sha256`` sidecar).  Returns the path.

    Raises :class:`CheckpointError` when ``state`` holds non-plain objects or writing fails; in
    both cases the previous file at ``path`` (if any) is left intact and no temporary file stays.
    """
    path = Path(path)
    if not isinstance(state, dict):
        raise CheckpointError(f"cannot save {path}: state must be a dict, got {type(state).__name__}")
    state = _plain(state, "state")
    tmp, side, side_tmp = _tmp_path(path), _sidecar(path), _tmp_path(_sidecar(path))
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        if sidecar:
            digest = sha256_file(tmp)
            _write_bytes_durably(side_tmp, f"{digest}  {path.name}\n".encode())
        # Drop any old sidecar first, so no crash can pair a new checkpoint with a stale hash.
        _unlink_quietly(side)
        os.replace(tmp, path)
        if sidecar:
            os.replace(side_tmp, side)
        _fsync_dir(path.parent)
    except BaseException as e:
        _unlink_quietly(tmp)
        _unlink_quietly(side_tmp)
        if isinstance(e, Exception):
            reason = e.strerror if isinstance(e, OSError) and e.strerror else _one_line(e)
            raise CheckpointError(f"cannot save checkpoint to {path}: {reason}") from e
        raise
    return path


def _unsafe_reason(message: str) -> str:
    m = re.search(r"GLOBAL ([\w.]+)", message)
    if m:
        return f"it refers to {m.group(1)}, which could run code"
    m = re.search(r"WeightsUnpickler error:\s*(.+)", message)
    if m:
        return _one_line(m.group(1), 100)
    return "it holds objects other than plain tensors and numbers"


def _verify_sidecar(path: Path) -> None:
    side = _sidecar(path)
    try:
        text = side.read_text(encoding="ascii")
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read checksum file {side.name}: {_one_line(e)}") from None
    fields = text.split()
    if not fields or not re.fullmatch(r"[0-9a-f]{64}", fields[0]):
        raise CheckpointError(f"{path}: checksum file {side.name} is malformed")
    if sha256_file(path) != fields[0]:
        raise CheckpointError(f"{path}: SHA-256 does not match {side.name}, the checkpoint is corrupted")


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``, always).

    Raises :class:`CheckpointError` (one line, naming the file) when the file is missing,
    truncated, corrupted (including a SHA-256 mismatch with its sidecar) or unsafe.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    try:
        _verify_sidecar(path)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "Weights only load failed" in msg:
            raise CheckpointError(
                f"refusing to load {path}: not a plain-weights checkpoint, unsafe to load ({_unsafe_reason(msg)})"
            ) from None
        raise CheckpointError(f"{path}: corrupted checkpoint ({_one_line(msg, 100)})") from None
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or _one_line(e)}") from None
    except Exception as e:  # zip errors, EOF, decoding errors, storage size mismatches, ...
        raise CheckpointError(
            f"{path}: truncated or corrupted checkpoint ({type(e).__name__}: {_one_line(e, 100)})"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a TeluCodec checkpoint (top level is {type(state).__name__}, not dict)")
    return state


# ------------------------------------------------------------------------ checkpoint folders
def checkpoint_path(folder, step: int) -> Path:
    """Conventional name for the checkpoint of a training step: ``<folder>/step-00001234.pt``."""
    return Path(folder) / f"step-{int(step):08d}.pt"


def _order_key(p: Path):
    numbers = re.findall(r"\d+", p.stem)
    try:
        mtime = p.stat().st_mtime_ns
    except OSError:
        mtime = 0
    return (int(numbers[-1]) if numbers else -1, mtime, p.name)


def list_checkpoints(folder, pattern: str = "*.pt") -> list[Path]:
    """Checkpoints in ``folder``, oldest first.

    Order: by the last number in the file name (the step), then by modification time, then by
    name; files without a number count as older than numbered ones.  Temporary files
    (``*.tmp-<pid>``) and sidecars are ignored.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [
        p for p in folder.glob(pattern) if p.is_file() and ".tmp-" not in p.name and not p.name.endswith(SIDECAR_SUFFIX)
    ]
    return sorted(found, key=_order_key)


def latest_checkpoint(folder, pattern: str = "*.pt") -> Path | None:
    """The newest checkpoint in ``folder`` (see :func:`list_checkpoints`), or None."""
    found = list_checkpoints(folder, pattern)
    return found[-1] if found else None


def keep_last(folder, n: int, pattern: str = "*.pt") -> list[Path]:
    """Delete all but the newest ``n`` checkpoints (and their sidecars); return what was deleted."""
    if n < 1:
        raise ValueError(f"keep_last needs n >= 1, got {n}")
    doomed = list_checkpoints(folder, pattern)[:-n]
    for p in doomed:
        _unlink_quietly(_sidecar(p))
        _unlink_quietly(p)
    return doomed


def load_latest_good(folder, map_location="cpu", pattern: str = "*.pt") -> tuple[Path, dict] | None:
    """Load the newest checkpoint in ``folder`` that loads cleanly.

    Corrupted or unsafe ones are skipped with a :class:`CheckpointWarning` naming them.  Returns
    ``(path, state)``, or None when the folder holds no checkpoints; raises
    :class:`CheckpointError` when it holds some but none loads.
    """
    candidates = list_checkpoints(folder, pattern)
    for p in reversed(candidates):
        try:
            return p, load_checkpoint(p, map_location=map_location)
        except CheckpointError as e:
            warnings.warn(f"skipping checkpoint {p.name}: {e}", CheckpointWarning, stacklevel=2)
    if candidates:
        raise CheckpointError(f"no loadable checkpoint in {folder}: all {len(candidates)} are corrupted or unsafe")
    return None


# ------------------------------------------------------------------------------ safetensors
def _tensor_digest(tensors: dict, metadata: dict) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({k: v for k, v in metadata.items() if k != SAFETENSORS_HASH_KEY}, sort_keys=True).encode())
    for name in sorted(tensors):
        t = tensors[name]
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        flat = t.detach().cpu().reshape(-1).contiguous()
        if flat.numel():
            h.update(flat.view(torch.uint8).numpy())
    return h.hexdigest()


def save_weights_safetensors(path, tensors: dict, metadata: dict | None = None) -> Path:
    """Atomically write ``tensors`` (``name -> Tensor``) and string ``metadata`` as safetensors.

    A SHA-256 of the content is added to the metadata under ``telucodec_sha256``.
    """
    from safetensors.torch import save as st_save

    path = Path(path)
    metadata = dict(metadata or {})
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise CheckpointError(f"cannot save {path}: metadata must map str to str, got {k!r}: {type(v).__name__}")
    clean = {}
    for k, v in tensors.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise CheckpointError(f"cannot save {path}: {k!r} is not a str -> Tensor entry")
        clean[k] = v.detach().cpu().contiguous().clone()  # clone: safetensors refuses shared storage
    metadata[SAFETENSORS_HASH_KEY] = _tensor_digest(clean, metadata)
    tmp = _tmp_path(path)
    try:
        _write_bytes_durably(tmp, st_save(clean, metadata=metadata))
        os.replace(tmp, path)
    except BaseException as e:
        _unlink_quietly(tmp)
        if isinstance(e, Exception):
            reason = e.strerror if isinstance(e, OSError) and e.strerror else _one_line(e)
            raise CheckpointError(f"cannot save weights to {path}: {reason}") from e
        raise
    return path


def load_weights_safetensors(path, device: str = "cpu") -> tuple[dict, dict]:
    """Load ``(tensors, metadata)`` from a safetensors file, verifying the stored SHA-256 if any."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no weights file at {path}")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise CheckpointError(f"{path}: not a valid safetensors file ({_one_line(e, 100)})") from None
    stored = metadata.get(SAFETENSORS_HASH_KEY)
    if stored is not None and _tensor_digest(tensors, metadata) != stored:
        raise CheckpointError(f"{path}: SHA-256 mismatch, the weights file is corrupted")
    return tensors, metadata
