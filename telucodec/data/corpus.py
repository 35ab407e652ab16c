"""The embedded default corpus: Telugu speech synthesised offline with eSpeak NG.

TeluCodec must train and run its tests with nothing downloaded, so when no ``--data_dir`` is given it makes its own
speech: about a hundred everyday Telugu sentences (in Telugu script, from telucodec.data.sentences) spoken by eSpeak
NG's Telugu voice ``te`` in several voice variants (``+m1``, ``+f2``, ...), with pitch, pitch range, speaking rate
and level varied deterministically from a seed. The clips are 16 kHz mono FLAC files in ``cache_dir()/corpus/<hash
of the parameters>/`` with a ``manifest.json`` listing sentence, voice, pitch, rate and duration per clip. They are
built once and reused.

Synthetic speech is a stand-in, not a substitute: it is cleaner, more regular and less varied than people talking.
Point ``--data_dir`` at real recordings (Common Voice Telugu, OpenSLR SLR66, your own) for a codec that generalises.

Licence note: eSpeak NG is GPL-3.0-or-later. TeluCodec does not include or vendor it; the ``espeakng-loader``
package (installed separately from PyPI) ships the library and its data, and this module only loads it at run time
through ``ctypes``, in a separate worker process. The generated audio is output of the program and is not covered by
the GPL.

Determinism: eSpeak NG keeps random and phase state between utterances (breath noise, pitch flutter) that
``espeak_Terminate`` does not reset, so the same sentence spoken twice in one process can differ. Each build
therefore runs in a fresh worker process that replays the same call sequence, with the random seeds fixed before
every clip: the same parameters give byte-identical files (on the same machine and library versions).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from telucodec.errors import TeluCodecError
from telucodec.paths import cache_dir

__all__ = [
    "SENTENCES",
    "VOICE_VARIANTS",
    "ESpeakNG",
    "build_corpus",
    "corpus_dir",
    "corpus_key",
    "load_manifest",
    "main",
]

CORPUS_VERSION = 1  #: Bump when the synthesis recipe changes, so old caches are not reused.

from telucodec.data.sentences import SENTENCES

#: eSpeak NG voice variants used with the Telugu voice ("" is the default ``te`` voice).
VOICE_VARIANTS_MALE: tuple[str, ...] = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7")
VOICE_VARIANTS_FEMALE: tuple[str, ...] = ("f1", "f2", "f3", "f4", "f5")
VOICE_VARIANTS: tuple[str, ...] = VOICE_VARIANTS_MALE + VOICE_VARIANTS_FEMALE

# Ranges the per-clip parameters are drawn from (eSpeak units).
RATE_WPM = (130, 195)  # espeakRATE, words per minute (eSpeak default 175)
PITCH = (25, 75)  # espeakPITCH, 0..100 (default 50)
PITCH_RANGE = (25, 90)  # espeakRANGE, 0..100 (default 50)
PEAK_DBFS = (-14.0, -1.0)  # clip level after synthesis
TWO_SENTENCE_PROB = 0.35  # chance a clip holds two sentences


from telucodec.data.espeak import _INSTALL_HINT, ESpeakNG, _espeak_paths, _espeak_version


# --------------------------------------------------------------------------- the recipe
def _uniform(seed: int, *keys) -> float:
    """A stable uniform number in [0, 1) from (seed, keys): the same on every platform and
    Python version, unlike ``random``/``numpy`` streams."""
    h = hashlib.blake2b(repr((int(seed),) + keys).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0**64


@dataclass(frozen=True)
class ClipPlan:
    """What one corpus clip says and how."""

    index: int
    text: str
    sentence_ids: tuple[int, ...]
    voice: str
    rate: int
    pitch: int
    pitch_range: int
    peak_dbfs: float


def _plan_clips(seed: int, sentences: tuple[str, ...] = SENTENCES):
    """Endless deterministic stream of ClipPlan: sentences in a fresh seeded order each
    round, one or two per clip, voice and prosody drawn per clip."""
    n = len(sentences)
    order: list[int] = []
    pos = 0
    k = 0

    def next_sentence() -> int:
        nonlocal order, pos
        if pos % n == 0:
            rnd = pos // n
            order = sorted(range(n), key=lambda i: _uniform(seed, "order", rnd, i))
        i = order[pos % n]
        pos += 1
        return i

    while True:
        count = 2 if _uniform(seed, "two", k) < TWO_SENTENCE_PROB else 1
        ids = tuple(next_sentence() for _ in range(count))
        female = _uniform(seed, "gender", k) < 0.5
        pool = VOICE_VARIANTS_FEMALE if female else VOICE_VARIANTS_MALE
        variant = pool[int(_uniform(seed, "voice", k) * len(pool))]
        lerp = lambda lo_hi, key: lo_hi[0] + (lo_hi[1] - lo_hi[0]) * _uniform(seed, key, k)  # noqa: E731
        yield ClipPlan(
            index=k,
            text=" ".join(sentences[i] for i in ids),
            sentence_ids=ids,
            voice="te" + (f"+{variant}" if variant else ""),
            rate=int(round(lerp(RATE_WPM, "rate"))),
            pitch=int(round(lerp(PITCH, "pitch"))),
            pitch_range=int(round(lerp(PITCH_RANGE, "range"))),
            peak_dbfs=round(lerp(PEAK_DBFS, "level"), 2),
        )
        k += 1


def _trim(wav: np.ndarray, sample_rate: int, margin_s: float = 0.12, rel_threshold: float = 0.01) -> np.ndarray:
    """Cut leading/trailing silence, keeping ``margin_s`` seconds of it at each end."""
    peak = float(np.abs(wav).max()) if wav.size else 0.0
    if peak <= 0:
        return wav
    loud = np.flatnonzero(np.abs(wav) > rel_threshold * peak)
    margin = int(margin_s * sample_rate)
    return wav[max(0, loud[0] - margin) : min(wav.size, loud[-1] + 1 + margin)]


def _build_into(out_dir: Path, minutes: float, sample_rate: int, seed: int, log=None) -> dict:
    """Synthesise clips into ``out_dir`` until ``minutes`` of audio exist; write the
    manifest last. Runs inside the worker process."""
    from telucodec.data.audio_io import resample, write_audio

    engine = ESpeakNG()
    target = float(minutes) * 60.0
    total = 0.0
    clips = []
    t0 = time.perf_counter()
    for plan in _plan_clips(seed):
        if total >= target:
            break
        raw = engine.synthesize(
            plan.text,
            plan.voice,
            plan.rate,
            plan.pitch,
            plan.pitch_range,
            seed=int(_uniform(seed, "noise", plan.index) * 2**31),
        )
        wav = raw.astype(np.float32) / 32768.0
        wav = _trim(wav, engine.sample_rate)
        if wav.size < engine.sample_rate // 4 or float(np.abs(wav).max()) < 1e-3:
            raise TeluCodecError(f"eSpeak NG produced no audible speech for: {plan.text[:40]} ({_INSTALL_HINT})")
        wav = resample(wav, engine.sample_rate, sample_rate)
        wav *= 10.0 ** (plan.peak_dbfs / 20.0) / max(float(np.abs(wav).max()), 1e-9)
        name = f"clip_{plan.index:05d}.flac"
        write_audio(out_dir / name, wav, sample_rate, fsync=False)
        seconds = wav.size / sample_rate
        total += seconds
        clips.append(
            {
                "file": name,
                "text": plan.text,
                "sentence_ids": list(plan.sentence_ids),
                "voice": plan.voice,
                "rate_wpm": plan.rate,
                "pitch": plan.pitch,
                "pitch_range": plan.pitch_range,
                "peak_dbfs": plan.peak_dbfs,
                "seconds": round(seconds, 4),
            }
        )
        if log is not None and len(clips) % 50 == 0:
            log(f"  {len(clips)} clips, {total / 60:.1f}/{minutes:g} min, {time.perf_counter() - t0:.1f} s")
    manifest = {
        "corpus_version": CORPUS_VERSION,
        "minutes": float(minutes),
        "sample_rate": int(sample_rate),
        "seed": int(seed),
        "espeak_ng": engine.version,
        "voice_language": "te",
        "total_seconds": round(total, 3),
        "clips": clips,
    }
    _write_json(out_dir / "manifest.json", manifest)
    return manifest


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- public API
def _resampler_name() -> str:
    return "soxr" if importlib.util.find_spec("soxr") is not None else "scipy"


def corpus_key(minutes: float, sample_rate: int = 16000, seed: int = 0) -> str:
    """The cache folder name for these parameters (a short hash; changes with the recipe,
    the sentence list, the eSpeak NG package version and the resampler)."""
    if not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes > 0):
        raise TeluCodecError(f"corpus minutes must be a positive number, got {minutes!r}")
    if not (isinstance(sample_rate, int) and 4000 <= sample_rate <= 192000):
        raise TeluCodecError(f"corpus sample rate must be an integer in 4000..192000 Hz, got {sample_rate!r}")
    params = {
        "v": CORPUS_VERSION,
        "minutes": round(float(minutes), 4),
        "sample_rate": int(sample_rate),
        "seed": int(seed),
        "espeakng_loader": _espeak_version(),
        "resampler": _resampler_name(),
        "sentences": hashlib.sha256("\n".join(SENTENCES).encode()).hexdigest()[:16],
        "voices": list(VOICE_VARIANTS),
    }
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def load_manifest(folder: str | os.PathLike) -> dict | None:
    """The manifest of a complete corpus folder, or None if it is missing or incomplete."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        clips = manifest["clips"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not clips or not all((folder / c["file"]).is_file() for c in clips):
        return None
    return manifest


@contextlib.contextmanager
def _build_lock(path: Path):
    """Serialise builders of one corpus (e.g. several DDP ranks) with a lock file."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock, the atomic rename still protects
        yield
        return
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _run_worker(tmp: Path, minutes: float, sample_rate: int, seed: int, verbose: bool) -> None:
    """Build in a fresh Python process (see the module docstring: determinism, and a crash in
    the C library cannot take the caller down)."""
    pkg_dir = str(Path(__file__).resolve().parent)
    # The worker needs only corpus/audio_io/errors/paths. Register a bare 'telucodec' package
    # so that importing them skips telucodec/__init__.py (which pulls in torch: seconds).
    bootstrap = (
        "import sys, types; pkg = types.ModuleType('telucodec'); pkg.__path__ = [sys.argv[1]]; "
        "sys.modules['telucodec'] = pkg; from telucodec.data.corpus import main; sys.exit(main(sys.argv[2:]))"
    )
    cmd = [
        sys.executable,
        "-c",
        bootstrap,
        pkg_dir,
        "--_build_into",
        str(tmp),
        "--minutes",
        repr(float(minutes)),
        "--sample_rate",
        str(int(sample_rate)),
        "--seed",
        str(int(seed)),
    ]
    env = dict(os.environ)
    if verbose:
        cmd.append("--verbose")
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, encoding="utf-8", errors="replace")
    except OSError as e:
        raise TeluCodecError(f"cannot start the corpus builder: {e}") from None
    if verbose and proc.stdout:
        print(proc.stdout, end="", file=sys.stderr)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        errs = [ln for ln in lines if ln.startswith("error: ")]
        if errs:
            msg = errs[-1][len("error: ") :]
        elif proc.returncode < 0:
            msg = f"the eSpeak NG worker crashed (signal {-proc.returncode}); {_INSTALL_HINT}"
        else:
            msg = (lines[-1] if lines else f"exit status {proc.returncode}") + f" ({_INSTALL_HINT})"
        raise TeluCodecError(f"building the Telugu corpus failed: {msg}")


def corpus_dir(minutes: float, sample_rate: int = 16000, seed: int = 0, *, verbose: bool = False) -> Path:
    """The folder holding the corpus for these parameters, building it first if needed."""
    key = corpus_key(minutes, sample_rate, seed)
    try:
        root = cache_dir() / "corpus"
    except OSError as e:
        raise TeluCodecError(f"cannot create the cache folder: {e} (set TELUCODEC_CACHE, or pass --data_dir)") from None
    final = root / key
    if load_manifest(final) is not None:
        return final
    _espeak_paths()  # clear error now if eSpeak NG is missing
    try:
        root.mkdir(parents=True, exist_ok=True)
        with _build_lock(root / f"{key}.lock"):
            return _build_locked(root, final, key, minutes, sample_rate, seed, verbose)
    except OSError as e:
        raise TeluCodecError(
            f"cannot write the corpus cache {root}: {e.strerror or e} (set TELUCODEC_CACHE, or pass --data_dir)"
        ) from None


def _build_locked(
    root: Path, final: Path, key: str, minutes: float, sample_rate: int, seed: int, verbose: bool
) -> Path:
    """Build the corpus into a temporary folder and rename it into place (lock held)."""
    if load_manifest(final) is not None:  # another process built it while we waited
        return final
    if final.exists():  # leftover of an interrupted build (rename makes this rare)
        shutil.rmtree(final, ignore_errors=True)
    tmp = root / f".{key}.building.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if verbose:
            print(
                f"building Telugu corpus ({minutes:g} min, {sample_rate} Hz, seed {seed}) in {final}", file=sys.stderr
            )
        _run_worker(tmp, minutes, sample_rate, seed, verbose)
        if load_manifest(tmp) is None:
            raise TeluCodecError(f"building the Telugu corpus failed: incomplete output in {tmp}")
        try:
            os.rename(tmp, final)
        except OSError:
            if load_manifest(final) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def build_corpus(minutes: float, sample_rate: int = 16000, seed: int = 0, *, verbose: bool = False) -> list[Path]:
    """Paths of the synthetic Telugu clips (16 kHz mono FLAC by default), at least ``minutes`` of speech in all,
    building and caching them on first use.

    The same (minutes, sample_rate, seed) always gives the same files, byte for byte. Raises ``TeluCodecError`` when
    eSpeak NG (``pip install espeakng-loader``) is missing or synthesis fails.
    """
    folder = corpus_dir(minutes, sample_rate, seed, verbose=verbose)
    manifest = load_manifest(folder)
    if manifest is None:  # pragma: no cover - corpus_dir guarantees it
        raise TeluCodecError(f"corpus in {folder} is incomplete; delete the folder and retry")
    return [folder / c["file"] for c in manifest["clips"]]


def main(argv: list[str] | None = None) -> int:
    """``python -m telucodec.data.corpus --minutes M``: build (or find) the corpus, print its folder."""
    ap = argparse.ArgumentParser(prog="python -m telucodec.data.corpus", description=main.__doc__)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--sample_rate", type=int, default=16000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--_build_into", dest="build_into", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    try:
        if args.build_into:  # worker mode, started by corpus_dir()
            log = (lambda m: print(m, flush=True)) if args.verbose else None
            _build_into(Path(args.build_into), args.minutes, args.sample_rate, args.seed, log=log)
            return 0
        t0 = time.perf_counter()
        folder = corpus_dir(args.minutes, args.sample_rate, args.seed, verbose=args.verbose)
        manifest = load_manifest(folder)
        n = len(manifest["clips"])
        print(f"{folder}  ({n} clips, {manifest['total_seconds'] / 60:.2f} min, {time.perf_counter() - t0:.1f} s)")
        return 0
    except TeluCodecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
