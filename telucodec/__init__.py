"""TeluCodec: a small neural speech codec (conv encoder -> residual VQ -> conv decoder), built to be taught.

    import telucodec
    model = telucodec.load()                      # the shipped checkpoint, or load("path/to/ckpt")
    codes = model.encode(wav, sample_rate=16000)  # (n_q, frames) integers
    wav_hat = model.decode(codes)

Module map. Each role is a folder, listed from the top; a role may import only the roles below it, and roles on
one line may not import each other (the import-linter contracts in pyproject.toml, run by the tests, which also
check this map against the folders and the contracts):

    cli | book
      cli.commands           `python -m telucodec`: the parser and the dispatch to each command
      cli.train_command      `telucodec train`: its options, their checks, the call to fit()
      cli.coding_commands    `telucodec encode` and `decode`, streamed a chunk at a time
      cli.fit_commands       `telucodec fit-envelope` and `fit-entropy` on a trained codec
      cli.usage              UsageError: an option that cannot work (one line, exit 2)
      cli.demo               `telucodec demo`: the shipped model beside Opus, AMR-NB and Codec2 on a held-out clip
      cli.shipped            the first shipped codec's data split and the command that trained it
      book.profiles          the notebooks' profile (ci or full) and seeded set-up; nothing imports book
      book.runs              the notebooks' cached training runs, keyed by what a run executes; chain()
      book.listings          show_source: the package's own source in a notebook
      book.players           audio players embedded in the page
      book.plots             training curves, spectrograms, waveforms
      book.tables            Markdown tables and the committed results they show
      book.verdicts          the one wording of each seed fix's verdict, quoted by chapters 04-12
    bench
      bench.common           machine description, synthetic speech, JSON output
      bench.quality          quality of every codec at every bitrate, bits counted from the files
      bench.speed            encode/decode speed beside EnCodec, one thread and all; its report
      bench.speed_models     the models timed (TeluCodec, EnCodec) behind one interface
      bench.speed_timing     timed calls: encode, decode and training steps, the models interleaved
      bench.cli              `python -m telucodec bench`
    training | tokens
      training.loop          fit(): the outline of training; _Run holds its state and takes one step
      training.run_data      a run's clips, validation crops, step counts and the batch of each step
      training.optim         optimizer, learning-rate schedule, mixed-precision dtype, gradient norms
      training.run_state     seeding, RNG states, checkpoints, exact resume, starting from a codec
      training.validation    evaluation during training: diagnostics, epoch means, the epoch line
      training.losses        the story's loss (fixes 5-7), the working loss (waveform, STFT, mel), Balancer
      training.recipes       the working and voices recipes: named ingredients on top of a preset
      training.batches       deterministic training crops (gain jitter) and validation crops
      training.adversarial   the GAN losses (hinge, LSGAN, feature matching)
      training.discriminators  multi-period, multi-scale STFT and multi-resolution discriminators
      training.diagnostics   overfit one clip, gradient shares, residual norms, codebook health
      training.experiments   the GPU ablation run
      tokens.orders          token orders of the codes: flat, and MusicGen's delay pattern; sequence lengths
      tokens.lm              CodeLM: a small causal transformer over the codes, a block at once or a position at a time
      tokens.lm_fit          training it on a codec's codes (exact resume), and the bits it gives a set of clips
      tokens.lm_coding       its two uses: range coding with its probabilities, and sampling a continuation
    evaluation
      evaluation.metrics     SNR, SI-SNR, range ratio, mel distance, PESQ-WB, STOI, ViSQOL, DNSMOS
      evaluation.scoring     the one scoring path: crop policy, reconstruct, evaluate_clips, paired intervals
      evaluation.baselines   Opus, AMR-NB and Codec2 round trips, bits counted from their packets
      evaluation.baseline_codecs  each baseline run: PyAV (Opus, AMR-NB), c2enc/c2dec; resampling, delay
      evaluation.yardstick   unseen voices beside Opus at equal bits spent, at four levels, scored
      evaluation.yardstick_report  a yardstick run's verdicts, merged parts and Markdown tables
      evaluation.ablation    reading a multi-seed ablation: means, seed spread, verdicts
    coding
      coding.inference       CodecModel, load(), export_safetensors, with/without envelope codebooks
      coding.checkpoint      atomic checkpoints with SHA-256 sidecars, safetensors
      coding.bitstream       the .tlc file format (v1 packed, v2 entropy-coded): constants, header rules, sizes
      coding.payload         a .tlc payload: bit-packed codes (v1), entropy-coded blocks (v2)
      coding.tlcfile         whole .tlc files: pack/unpack bytes, write_tlc/read_tlc (atomic, checked)
      coding.tlcwriter       TlcWriter: a .tlc written frame by frame, as an encoder produces them
      coding.tlcreader       TlcReader: a .tlc read in blocks of frames; one cut off, as far as it goes
      coding.entropy         static code priors shipped with the model; range coding of .tlc v2
      coding.entropy_fit     fitting those priors on the codes a codec gives its training speech
      coding.streaming       any-length coding: stream encoder/decoder, piece size, measured delay
      coding.receptive_field  what one code frame depends on, measured by back-propagation
      coding.piece_synthesis  one piece of a stream decoded exactly as the whole-file decoder would
      coding.chunked         whole arrays coded in pieces (CodecModel.encode/decode)
      coding.audio_blocks    audio files read and written block by block (the CLI's encode/decode)
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
      data.crops             CropDataset: fixed-length training crops and validation segments
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
