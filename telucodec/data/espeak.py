"""The eSpeak NG binding: loads the library that `espeakng-loader` installs, through ctypes, and synthesises one
utterance at a time (16-bit PCM at eSpeak's own rate). eSpeak NG is GPL-3.0-or-later; TeluCodec does not vendor it,
it only loads it at run time (see telucodec.data.corpus for why each build runs in a fresh worker process)."""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
from pathlib import Path

import numpy as np

from telucodec.errors import TeluCodecError

_INSTALL_HINT = "pip install espeakng-loader, or pass --data_dir with your own audio"


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def _espeak_paths() -> tuple[str, str]:
    """(library path, data path) from the espeakng-loader package, or TeluCodecError."""
    if importlib.util.find_spec("espeakng_loader") is None:
        raise TeluCodecError(f"the Telugu corpus needs eSpeak NG, which is not installed ({_INSTALL_HINT})")
    try:
        import espeakng_loader

        lib_path = espeakng_loader.get_library_path()
        data_path = espeakng_loader.get_data_path()
    except Exception as e:
        raise TeluCodecError(
            f"eSpeak NG from espeakng-loader is unusable: {' '.join(str(e).split())} ({_INSTALL_HINT})"
        ) from None
    if not Path(lib_path).is_file():
        raise TeluCodecError(f"eSpeak NG library missing at {lib_path} ({_INSTALL_HINT})")
    return lib_path, data_path


def _espeak_version() -> str:
    """The espeakng-loader package version (part of the cache key; no library loaded)."""
    try:
        from importlib.metadata import version

        return version("espeakng-loader")
    except Exception:
        return "unknown"


class ESpeakNG:
    """A minimal ctypes binding to eSpeak NG's synchronous synthesis API.

    eSpeak keeps global state, so use one instance per process (the corpus builder runs it
    in a worker process of its own). ``synthesize`` returns int16 samples at
    ``self.sample_rate`` (22050 Hz).
    """

    AUDIO_OUTPUT_SYNCHRONOUS = 2
    INITIALIZE_DONT_EXIT = 0x8000
    POS_CHARACTER = 1
    CHARS_UTF8 = 1
    ENDPAUSE = 0x1000
    RATE, VOLUME, PITCH, RANGE = 1, 2, 3, 4

    def __init__(self) -> None:
        lib_path, data_path = _espeak_paths()
        self.data_path = data_path
        try:
            lib = ctypes.CDLL(lib_path)
        except OSError as e:
            raise TeluCodecError(
                f"cannot load eSpeak NG library {lib_path}: {' '.join(str(e).split())} ({_INSTALL_HINT})"
            ) from None
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_GetCurrentVoice.restype = ctypes.POINTER(_Voice)
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        self._lib = lib
        self._set_rand_seed = getattr(lib, "espeak_ng_SetRandSeed", None)
        if self._set_rand_seed is not None:
            self._set_rand_seed.argtypes = [ctypes.c_long]
        try:
            self._libc = ctypes.CDLL(None)  # eSpeak also draws from libc rand()
            self._libc.srand.argtypes = [ctypes.c_uint]
        except (OSError, AttributeError):  # pragma: no cover - non-POSIX
            self._libc = None

        with _short_data_path(data_path) as path:
            rate = lib.espeak_Initialize(self.AUDIO_OUTPUT_SYNCHRONOUS, 0, path.encode(), self.INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise TeluCodecError(f"eSpeak NG failed to initialise with data at {data_path} ({_INSTALL_HINT})")
        self.sample_rate = int(rate)
        self.version = (lib.espeak_Info(None) or b"?").decode("ascii", "replace")
        self._chunks: list[np.ndarray] = []

        def _collect(wav, numsamples, events):  # called by eSpeak during espeak_Synth
            if numsamples > 0 and wav:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
            return 0  # 0 = continue

        self._callback = _SYNTH_CALLBACK(_collect)  # keep a reference: eSpeak holds the pointer
        lib.espeak_SetSynthCallback(self._callback)

    def set_voice(self, name: str) -> str:
        """Select a voice such as ``"te"`` or ``"te+f2"``; returns eSpeak's voice identifier."""
        base, _, variant = name.partition("+")
        if variant and not (Path(self.data_path) / "voices" / "!v" / variant).is_file():
            raise TeluCodecError(f"eSpeak NG voice variant '{variant}' not found in {self.data_path}")
        if self._lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise TeluCodecError(f"eSpeak NG has no voice '{name}' ({_INSTALL_HINT})")
        voice = self._lib.espeak_GetCurrentVoice()
        ident = voice.contents.identifier.decode() if voice and voice.contents.identifier else ""
        want = base if not variant else f"{base}+{variant}"
        if not ident.split("/")[-1] == want:
            raise TeluCodecError(f"eSpeak NG selected voice '{ident}' instead of '{want}'")
        return ident

    def synthesize(
        self, text: str, voice: str = "te", rate: int = 175, pitch: int = 50, pitch_range: int = 50, seed: int = 0
    ) -> np.ndarray:
        """Speak ``text`` (UTF-8) and return int16 samples at ``self.sample_rate``."""
        self.set_voice(voice)
        for param, value in ((self.RATE, rate), (self.PITCH, pitch), (self.RANGE, pitch_range), (self.VOLUME, 100)):
            if self._lib.espeak_SetParameter(param, int(value), 0) != 0:
                raise TeluCodecError(f"eSpeak NG rejected parameter {param}={value}")
        if self._set_rand_seed is not None:
            self._set_rand_seed(int(seed) & 0x7FFFFFFF)
        if self._libc is not None:
            self._libc.srand(int(seed) & 0x7FFFFFFF)
        data = text.encode("utf-8") + b"\0"
        self._chunks = []
        err = self._lib.espeak_Synth(
            data, len(data), 0, self.POS_CHARACTER, 0, self.CHARS_UTF8 | self.ENDPAUSE, None, None
        )
        if err != 0:
            raise TeluCodecError(f"eSpeak NG synthesis failed (error {err}) for: {text[:40]}")
        self._lib.espeak_Synchronize()
        chunks, self._chunks = self._chunks, []
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


@contextlib.contextmanager
def _short_data_path(path: str):
    """eSpeak copies the data path into a small fixed buffer; give it a short symlink when
    the installed path is long (deep virtual environments)."""
    if len(path) < 120:
        yield path
        return
    import tempfile

    link = Path(tempfile.gettempdir()) / f"telucodec-espeak-{os.getpid()}"
    try:
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(path, target_is_directory=True)
    except OSError:
        yield path
        return
    try:
        yield str(link)
    finally:
        with contextlib.suppress(OSError):
            link.unlink()
