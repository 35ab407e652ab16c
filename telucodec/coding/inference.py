"""Using a trained codec: load it, encode waveforms to integer codes, decode codes to waveforms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from telucodec.codec.envelope import DEFAULT_SPLIT
from telucodec.codec.model import Codec
from telucodec.coding import checkpoint as ckpt
from telucodec.config import CodecConfig, preset
from telucodec.errors import CheckpointError, TeluCodecError
from telucodec.fixes import Fixes
from telucodec.paths import RESULTS_DIR

PRETRAINED = RESULTS_DIR / "pretrained" / "telucodec.safetensors"  # the codec shipped now: telucodec.load()
ONE_SPEAKER = RESULTS_DIR / "one-speaker" / "telucodec.safetensors"  # the first shipped codec (chapters 14-16 study it)


class CodecModel:
    """A trained codec with a numpy-friendly interface. Mono in, mono out; any input rate is resampled."""

    def __init__(self, codec: Codec, device: str = "cpu", source: str = ""):
        self.codec = codec.fold_weight_norm().to(device).eval()  # inference needs no reparametrisation
        self.device, self.source = device, source
        self.metadata: dict = {}  # what a .safetensors export recorded beside the weights (recipe, command, ...)
        self.entropy = None  # a telucodec.coding.entropy.EntropyModel shipped beside the weights: .tlc version 2

    @property
    def sample_rate(self) -> int:
        return self.codec.config.sample_rate

    @property
    def config(self) -> CodecConfig:
        return self.codec.config

    def kbps_to_n_q(self, kbps: float) -> int:
        n = self.config.n_q_for_kbps(kbps)
        if abs(self.config.bitrate(n) / 1000 - kbps) > 1e-6:
            rates = ", ".join(f"{self.config.bitrate(k) / 1000:g}" for k in self.config.n_q_choices)
            raise TeluCodecError(f"this model cannot code at {kbps} kbps; choose one of {rates}")
        return n

    @classmethod
    def untrained(cls, preset_name: str = "ci", seed: int = 0, fixes: Fixes = Fixes.all()) -> CodecModel:
        """A randomly initialised codec (for tests and speed benchmarks, not for listening)."""
        torch.manual_seed(seed)
        return cls(Codec(preset(preset_name).codec, fixes), source=f"untrained {preset_name}")

    def _prepare_numpy(self, wav, sample_rate: int) -> np.ndarray:
        """A mono float32 numpy waveform at the model's rate (channels averaged, resampled), checked."""
        wav = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
        wav = wav.astype(np.float32)
        if wav.ndim == 2:  # (channels, time) or (time, channels)
            wav = wav.mean(axis=0 if wav.shape[0] < wav.shape[1] else 1)
        if wav.ndim != 1 or wav.size == 0:
            raise TeluCodecError("expected a non-empty mono waveform (1-D array)")
        if not np.isfinite(wav).all():
            raise TeluCodecError("the waveform contains NaN or inf samples")
        if sample_rate != self.sample_rate:
            from telucodec.data.audio_io import resample

            wav = resample(wav, int(sample_rate), self.sample_rate)
        return wav

    def _prepare(self, wav, sample_rate: int) -> torch.Tensor:
        return torch.from_numpy(self._prepare_numpy(wav, sample_rate))[None, None].to(self.device)

    def encode(self, wav, sample_rate: int, kbps: float = 6.0, *, chunk_seconds: float | None = None) -> np.ndarray:
        """Waveform (1-D, any rate) -> codes, int64 array of shape (n_q, frames).

        Long inputs are coded `chunk_seconds` at a time (default telucodec.coding.streaming.DEFAULT_CHUNK_SECONDS), each
        piece with the model's receptive field as context on both sides: the codes are identical to coding the
        whole input at once, and memory stays bounded. chunk_seconds=0 codes it in one piece."""
        from telucodec.coding.chunked import encode_chunked

        return encode_chunked(self, self._prepare_numpy(wav, sample_rate), self.kbps_to_n_q(kbps), chunk_seconds)

    def decode(self, codes, num_samples: int | None = None, *, chunk_seconds: float | None = None) -> np.ndarray:
        """Codes (n_q, frames) -> float32 waveform at self.sample_rate (trimmed to num_samples if given).

        Decoded `chunk_seconds` at a time, like encode: the same samples as one piece, to float rounding."""
        codes = np.asarray(codes.detach().cpu() if isinstance(codes, torch.Tensor) else codes)
        integral = np.issubdtype(codes.dtype, np.integer) or (
            np.issubdtype(codes.dtype, np.floating) and np.isfinite(codes).all() and (codes == np.round(codes)).all()
        )
        if (
            codes.ndim != 2
            or codes.size == 0
            or not integral
            or codes.shape[0] > self.config.n_q
            or codes.max() >= self.config.codebook_size
            or codes.min() < 0
        ):
            raise TeluCodecError("codes must be (n_q, frames) integers in [0, codebook_size)")
        from telucodec.coding.chunked import decode_chunked

        return decode_chunked(self, codes.astype(np.int64, copy=False), num_samples, chunk_seconds)

    def stream_encoder(self, kbps: float = 6.0, **options):
        """A telucodec.coding.streaming.StreamEncoder: push samples at the model's rate, get code frames out
        (``.delay_samples``: a frame plus the encoder's look-ahead). Options: n_q, min_frames, max_frames."""
        from telucodec.coding.streaming import StreamEncoder

        return StreamEncoder(self, kbps, **options)

    def stream_decoder(self, **options):
        """A telucodec.coding.streaming.StreamDecoder: push code frames, get samples out (``.delay_samples``: the
        decoder's look-ahead). Options: n_q, num_frames, num_samples (the stream's totals, when known),
        min_frames, max_frames."""
        from telucodec.coding.streaming import StreamDecoder

        return StreamDecoder(self, **options)

    def pack(self, codes, num_samples: int, *, entropy: bool = True, block_frames: int | None = None) -> bytes:
        """Codes (n_q, frames) -> the bytes of a ``.tlc`` file: entropy-coded (version 2) when this model has an
        entropy model for that n_q and `entropy` is True, else version 1."""
        from telucodec.coding import bitstream, tlcfile

        codes = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
        n_q = codes.shape[0] if codes.ndim == 2 else 0
        model = self.entropy if entropy and self.entropy is not None and self.entropy.covers(n_q) else None
        return tlcfile.pack(
            codes,
            sample_rate=self.sample_rate,
            codebook_size=self.config.codebook_size,
            hop_length=self.config.hop_length,
            num_samples=num_samples,
            envelope_stages=self.codec.envelope_stages(n_q) if n_q else 0,
            entropy=model,
            block_frames=block_frames or bitstream.DEFAULT_BLOCK_FRAMES,
        )

    def unpack(self, data: bytes, source: str = "bitstream"):
        """The bytes of a ``.tlc`` file (version 1, or 2 entropy-coded with this model's entropy model) -> a
        telucodec.coding.bitstream.Bitstream."""
        from telucodec.coding import tlcfile

        return tlcfile.unpack(data, source=source, entropy=self.entropy)

    def state(self) -> dict:
        return {"codec_config": self.config.to_dict(), "fixes": self.codec.fixes.to_dict()}


def load(path=None, device: str = "cpu") -> CodecModel:
    """A training checkpoint (.pt, loaded with weights_only=True), a .safetensors export, or a checkpoint folder
    (its newest good checkpoint). None = the pretrained checkpoint shipped under results/pretrained/."""
    if path is None:
        path = PRETRAINED
        if not path.exists():
            raise CheckpointError(
                f"no pretrained checkpoint is shipped yet ({path}); train one with "
                f"`python -m telucodec train` and pass --checkpoint"
            )
    path = Path(path)
    if path.is_dir():
        found = ckpt.load_latest_good(path)
        if found is None:
            raise CheckpointError(f"no checkpoint in {path}")
        state = found[1]
    elif path.suffix == ".safetensors":
        tensors, meta = ckpt.load_weights_safetensors(path)
        import json

        from telucodec.coding.entropy import TENSOR_PREFIX

        entropy_tensors = {k: v for k, v in tensors.items() if k.startswith(TENSOR_PREFIX)}
        tensors = {k: v for k, v in tensors.items() if not k.startswith(TENSOR_PREFIX)}
        state = {"model": tensors, "codec_config": json.loads(meta["codec_config"]), "fixes": json.loads(meta["fixes"])}
    else:
        state = ckpt.load_checkpoint(path)
    try:
        codec = Codec(CodecConfig.from_dict(state["codec_config"]), Fixes.from_dict(state["fixes"]))
        missing, unexpected = codec.load_state_dict(state["model"], strict=False)
        if unexpected or any(not k.endswith(TRAINING_ONLY) for k in missing):
            raise ValueError("weights missing or left over")
        for i, stage in enumerate(codec.quantizer.stages):  # an inference export stores no EMA statistics
            if f"quantizer.stages.{i}.ema_sum" in missing:
                stage.restart_ema()
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a TeluCodec checkpoint ({type(exc).__name__})") from None
    model = CodecModel(codec, device, source=str(path))
    if path.suffix == ".safetensors":
        model.metadata = {k: v for k, v in meta.items() if k not in ("codec_config", "fixes")}
        from telucodec.coding.entropy import META_KEY, EntropyModel

        try:
            model.entropy = EntropyModel.from_tensors(entropy_tensors, meta.get(META_KEY))
        except ValueError as exc:
            raise CheckpointError(f"{path}: its entropy model is damaged ({exc})") from None
        if model.entropy is not None and model.entropy.codebook_size != codec.config.codebook_size:
            raise CheckpointError(
                f"{path}: its entropy model codes {model.entropy.codebook_size} codes, the codec "
                f"{codec.config.codebook_size}"
            )
    return model


TRAINING_ONLY = ("ema_count", "ema_sum")  # quantizer statistics that only training reads


def export_safetensors(model: CodecModel | Codec, path, extra: dict | None = None, compact: bool = False):
    """Write the weights and config as a .safetensors file (for shipping a pretrained model), with the model's
    entropy model (telucodec.coding.entropy) if it has one; an "entropy_model" key in `extra` without one is dropped.
    `compact`: an inference export, about half the file. The codec's floating-point weights are stored in half
    precision (`load` gives them back as float32, rounded to float16's 11 significant bits) and the quantizer's
    training-only EMA statistics are left out (`load` restarts them from the codebooks, as k-means does: a
    fine-tune from it starts there). The entropy model's integer tables are stored exactly."""
    import json

    from telucodec.coding.entropy import META_KEY

    codec = model.codec if isinstance(model, CodecModel) else model
    entropy = getattr(model, "entropy", None)
    meta = {"codec_config": json.dumps(codec.config.to_dict()), "fixes": json.dumps(codec.fixes.to_dict())}
    meta.update({k: str(v) for k, v in (extra or {}).items() if k != META_KEY})
    tensors = {k: v.detach().cpu().contiguous() for k, v in codec.state_dict().items()}
    if compact:
        tensors = {k: v for k, v in tensors.items() if not k.endswith(TRAINING_ONLY)}
        too_large = [k for k, v in tensors.items() if v.is_floating_point() and v.abs().max() > 60000]
        if too_large:
            raise ValueError(f"these weights do not fit float16: {', '.join(too_large)}")
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
        meta["stored_as"] = "compact"
    if entropy is not None:
        tensors.update(entropy.tensors())
        meta[META_KEY] = entropy.metadata()
    ckpt.save_weights_safetensors(path, tensors, meta)


def with_envelope(model, clips, split: tuple = DEFAULT_SPLIT, seed: int = 0):
    """A copy of a trained `CodecModel` (or `Codec`) whose bitstream carries the envelope: the same weights, plus
    envelope codebooks fitted on `clips` (its training split). Returns (CodecModel, fit report)."""
    from dataclasses import replace

    from telucodec.codec.model import Codec

    codec = model.codec if hasattr(model, "codec") else model
    if codec.config.envelope_split:
        raise ValueError("this codec already carries an envelope")
    config = replace(codec.config, envelope_split=split)
    new = Codec(config, codec.fixes)
    missing, unexpected = new.load_state_dict(codec.state_dict(), strict=False)
    if unexpected or any(k != "envelope.codebooks" for k in missing):
        raise ValueError("the codec's weights do not fit a codec with envelope codebooks")
    report = new.envelope.fit_codebooks(clips, seed=seed)
    report["split"] = [list(p) for p in config.envelope_split]
    return CodecModel(new.eval(), source=getattr(model, "source", "")), report


def without_envelope(model):
    """The same codec with its envelope codebooks left out: all n_q codebooks are the codec's own again (what it
    was trained as). Returns a CodecModel; `model` is not changed."""
    from dataclasses import replace

    from telucodec.codec.model import Codec

    codec = model.codec if hasattr(model, "codec") else model
    if not codec.config.envelope_split:
        return model if hasattr(model, "codec") else CodecModel(codec.eval())
    new = Codec(replace(codec.config, envelope_split=()), codec.fixes)
    new.load_state_dict({k: v for k, v in codec.state_dict().items() if not k.startswith("envelope.")})
    return CodecModel(new.eval(), source=getattr(model, "source", "") + " without its envelope codebooks")
