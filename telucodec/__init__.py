"""TeluCodec: a small neural speech codec (conv encoder -> residual VQ -> conv decoder), built to be taught.

    import telucodec
    model = telucodec.load()                      # the shipped checkpoint, or load("path/to/ckpt")
    codes = model.encode(wav, sample_rate=16000)  # (n_q, frames) integers
    wav_hat = model.decode(codes)

Module map. Each role is a folder, listed from the top; a role may import only the roles below it, and roles on
one line may not import each other (the import-linter contracts in pyproject.toml, run by the tests, which also
check this map against the folders and the contracts):

    cli | book
      cli.commands           `python -m telucodec`: train, encode, decode, fit-envelope, fit-entropy, bench, demo
      cli.demo               `telucodec demo`: the shipped model beside Opus, AMR-NB and Codec2 on a held-out clip
      cli.shipped            the shipped model's data split and the command that trained it
      book                   the notebooks' helpers (cached runs, listings, plots); nothing imports it
    bench
      bench.common           machine description, synthetic speech, JSON output
      bench.quality          quality of every codec at every bitrate, bits counted from the files
      bench.speed            encode/decode speed beside EnCodec, one thread and all
      bench.cli              `python -m telucodec bench`
    training
      training.loop          fit(): the training loop (_Run holds its state), evaluation during training
      training.losses        the story's loss (fixes 5-7), the working loss (waveform, STFT, mel), Balancer
      training.recipes       the working and voices recipes: named ingredients on top of a preset
      training.batches       deterministic training crops (gain jitter) and validation crops
      training.adversarial   the GAN losses (hinge, LSGAN, feature matching)
      training.discriminators  multi-period, multi-scale STFT and multi-resolution discriminators
      training.diagnostics   overfit one clip, gradient shares, residual norms, codebook health
      training.experiments   the GPU ablation run
    evaluation
      evaluation.metrics     SNR, SI-SNR, range ratio, mel distance, PESQ-WB, STOI, ViSQOL, DNSMOS
      evaluation.scoring     the one scoring path: crop policy, reconstruct, evaluate_clips, paired intervals
      evaluation.baselines   Opus, AMR-NB and Codec2 round trips, bits counted from their packets
      evaluation.yardstick   unseen voices beside Opus at equal bits spent, levels, verdicts
      evaluation.ablation    reading a multi-seed ablation: means, seed spread, verdicts
    coding
      coding.inference       CodecModel, load(), export_safetensors, with/without envelope codebooks
      coding.checkpoint      atomic checkpoints with SHA-256 sidecars, safetensors
      coding.bitstream       the .tlc file format (v1 packed, v2 entropy-coded), read and written in blocks
      coding.entropy         static code priors shipped with the model; range coding of .tlc v2
      coding.streaming       any-length coding: chunks sized by the receptive field, stream encoder/decoder
    codec
      codec.model            encoder, decoder (fix 3), Codec, weight norm, k-means initialisation
      codec.quantizer        VectorQuantizer, ResidualVQ (fixes 1, 2, 4), codebook usage
      codec.backbone         frame-rate ConvNeXt blocks and the inverse-STFT head
      codec.spectral         mel spectrograms, the story's log-mel loss, the mel distance
      codec.envelope         band-level (envelope) codebooks coded beside the codec's own
      codec.postfilter       the learned band-gain post-filter
    data
      data.audio_io          reading, writing, resampling, loudness normalisation
      data.folders           folders of audio, split by file, spec_for, load_dataset
      data.speakers          speaker-disjoint train/tune/test lists of a speech folder
      data.corpus            builds and caches the embedded corpus
      data.espeak            the ctypes binding to eSpeak NG
      data.sentences         the Telugu text of the embedded corpus
    config | fixes | paths | errors
      config                 CodecConfig, TrainConfig, the presets
      fixes                  the seven fixes of the story as one dataclass of switches
      paths                  where results and caches live
      errors                 the package's exceptions and warnings
"""

from telucodec.codec.model import Codec
from telucodec.config import PRESETS, CodecConfig, TrainConfig, preset
from telucodec.errors import BadAudioWarning, BitstreamError, CheckpointError, DataError, TeluCodecError
from telucodec.fixes import SEVEN, Fixes

__all__ = [
    "PRESETS",
    "SEVEN",
    "BadAudioWarning",
    "BitstreamError",
    "CheckpointError",
    "Codec",
    "CodecConfig",
    "CodecModel",
    "DataError",
    "Fixes",
    "TeluCodecError",
    "TrainConfig",
    "load",
    "preset",
]
__version__ = "0.1.0"


def load(path=None, device: str = "cpu"):
    """Load a trained codec (a training checkpoint or a .safetensors file); None = the shipped checkpoint."""
    from telucodec.coding.inference import load as _load

    return _load(path, device)


def __getattr__(name):
    if name == "CodecModel":
        from telucodec.coding.inference import CodecModel

        return CodecModel
    raise AttributeError(name)
