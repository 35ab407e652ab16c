"""TeluCodec: a small neural speech codec (conv encoder -> residual VQ -> conv decoder), built to be taught.

    import telucodec
    model = telucodec.load()                      # the shipped checkpoint, or load("path/to/ckpt")
    codes = model.encode(wav, sample_rate=16000)  # (n_q, frames) integers
    wav_hat = model.decode(codes)

Module map (what each module owns; it may import only the modules listed after "uses"):

    config       CodecConfig, TrainConfig, the presets                                  uses nothing
    fixes        the seven fixes of the story as one dataclass of switches              uses nothing
    recipes      the working recipe: named ingredients on top of a preset               uses config, fixes
    quantizer    VectorQuantizer, ResidualVQ (fixes 1, 2, 4), codebook usage            uses fixes
    model        encoder, decoder (fix 3), Codec, weight norm, k-means initialisation   uses config, fixes, quantizer
    backbone     frame-rate ConvNeXt blocks and the inverse-STFT head (vocos_head)      uses nothing
    spectral     mel spectrograms, the story's log-mel loss, the mel distance metric    uses nothing
    losses       story loss (fixes 5-7), working loss (waveform, STFT, mel), Balancer   uses fixes, spectral
    metrics      SNR, SI-SNR, range ratio, mel distance, PESQ-WB, STOI, ViSQOL          uses spectral
    evaluation   the one scoring path: crop policy, reconstruct, evaluate_clips        uses metrics
    diagnostics  overfit one clip, gradient shares, residual norms, codebook health     uses model, losses, metrics
    batches      deterministic training crops (gain jitter) and validation crops        uses nothing
    audio_io     reading, writing, resampling, loudness normalisation                  uses errors
    sentences    the Telugu text of the embedded corpus                                 uses nothing
    espeak       the ctypes binding to eSpeak NG                                        uses errors
    corpus       builds and caches the embedded corpus                                 uses audio_io, espeak, sentences
    data         folders of audio, split by file, spec_for                              uses audio_io, corpus
    speakers     speaker-disjoint train/tune/test lists of a speech folder, cached     uses data, paths, errors
    checkpoint   atomic checkpoints with SHA-256 sidecars, safetensors                  uses errors
    train        fit(): the training loop (_Run holds its state)                        uses all of the above
    inference    CodecModel, load(), export_safetensors                                 uses model, checkpoint
    bitstream    the .tlc file format, written and read in blocks of frames            uses errors
    entropy      static code priors shipped with the model; range coding of .tlc v2    uses errors, streaming
    streaming    any-length coding: chunks sized by the receptive field, stream I/O    uses audio_io, spectral, envelope
    baselines    Opus, AMR-NB, Codec2 round trips                                       uses errors
    yardstick    unseen voices beside Opus at equal bits spent, levels, verdicts       uses metrics, speakers, baselines
    bench/       quality and speed benchmarks (common, quality, speed, cli)             uses the package
    shipped      the shipped model's data split and command; demo: `telucodec demo`     uses data, inference
    experiments  the GPU ablation run                                                   uses train, evaluation
    cli          `python -m telucodec ...`                                              uses the package
    book         the notebooks' helpers: imports the package; nothing in the package imports it
"""
from telucodec.config import PRESETS, CodecConfig, TrainConfig, preset
from telucodec.errors import BadAudioWarning, BitstreamError, CheckpointError, DataError, TeluCodecError
from telucodec.fixes import SEVEN, Fixes
from telucodec.codec.model import Codec

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
