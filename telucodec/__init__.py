"""TeluCodec: a small neural speech codec (conv encoder -> residual VQ -> conv decoder), built to be taught.

    import telucodec
    model = telucodec.load()                      # the shipped checkpoint, or load("path/to/ckpt")
    codes = model.encode(wav, sample_rate=16000)  # (n_q, frames) integers
    wav_hat = model.decode(codes)
"""
from .config import PRESETS, CodecConfig, TrainConfig, preset
from .errors import BadAudioWarning, BitstreamError, CheckpointError, DataError, TeluCodecError
from .fixes import SEVEN, Fixes
from .model import Codec

__version__ = "0.1.0"


def load(path=None, device: str = "cpu"):
    """Load a trained codec (a training checkpoint or a .safetensors file); None = the shipped checkpoint."""
    from .inference import load as _load
    return _load(path, device)


def __getattr__(name):
    if name == "CodecModel":
        from .inference import CodecModel
        return CodecModel
    raise AttributeError(name)
