"""`python -m telucodec encode` and `decode`: audio to a .tlc bitstream and back, streamed a chunk at a time."""

from __future__ import annotations

import warnings
from pathlib import Path


def add_encode_parser(sub):
    p = sub.add_parser("encode", help="encode audio to a .tlc bitstream")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--checkpoint", default=None, help="checkpoint file or folder (default: the shipped model)")
    p.add_argument("--kbps", type=float, default=6.0, choices=[1.5, 3.0, 6.0])
    p.add_argument(
        "--no_entropy",
        action="store_true",
        help="write a plain version 1 .tlc even when the model "
        "has an entropy model (by default its codes are entropy-coded: version 2, smaller)",
    )
    return p


def cmd_encode(args):
    """Streams: the audio is read in blocks, coded a chunk at a time (telucodec.coding.streaming; the codes are those of
    the whole file at once) and written to the .tlc as it goes, so memory does not grow with the input."""
    from telucodec.coding.audio_blocks import AudioBlockReader
    from telucodec.coding.inference import load
    from telucodec.coding.streaming import StreamEncoder, chunk_frames
    from telucodec.coding.tlcwriter import TlcWriter

    model = load(args.checkpoint)
    reader = AudioBlockReader(args.input, model.sample_rate)  # checks the file before anything is written
    chunk = chunk_frames(model)
    encoder = StreamEncoder(model, args.kbps, min_frames=chunk, max_frames=chunk)
    entropy = (
        model.entropy
        if not args.no_entropy and model.entropy is not None and model.entropy.covers(encoder.n_q)
        else None
    )  # version 2 (entropy-coded) when it can
    with (
        reader,
        TlcWriter(
            args.output,
            n_q=encoder.n_q,
            sample_rate=model.sample_rate,
            codebook_size=model.config.codebook_size,
            hop_length=model.config.hop_length,
            envelope_stages=model.codec.envelope_stages(encoder.n_q),
            entropy=entropy,
        ) as writer,
    ):
        for block in reader:
            writer.write(encoder.push(block))
        writer.write(encoder.flush())
        writer.finish(encoder.samples_in)
    seconds = encoder.samples_in / model.sample_rate
    size = Path(args.output).stat().st_size
    coded = ", entropy-coded" if entropy is not None else ""
    print(
        f"{args.input}: {seconds:.2f} s -> {args.output}: {size} bytes "
        f"({size * 8 / seconds / 1000:.2f} kbps with header{coded})"
    )


def add_decode_parser(sub):
    p = sub.add_parser("decode", help="decode a .tlc bitstream to a wav file")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--checkpoint", default=None, help="the checkpoint that encoded it (default: the shipped model)")
    return p


def cmd_decode(args):
    """Streams: the .tlc is read a block of frames at a time, decoded a chunk at a time (telucodec.coding.streaming; the
    samples are those of the whole file at once) and written as it goes. A .tlc that ends early is decoded as far
    as it goes, with a warning naming it."""
    from telucodec.coding.audio_blocks import AudioBlockWriter
    from telucodec.coding.inference import load
    from telucodec.coding.streaming import StreamDecoder, chunk_frames
    from telucodec.coding.tlcreader import TlcReader, TruncatedStreamWarning
    from telucodec.errors import BitstreamError

    model = load(args.checkpoint)  # first: an entropy-coded file is read with its entropy model
    with warnings.catch_warnings(record=True) as truncation:
        warnings.simplefilter("always", TruncatedStreamWarning)
        stream = TlcReader(args.input, entropy=model.entropy)
    if (stream.sample_rate, stream.codebook_size, stream.hop_length) != (
        model.sample_rate,
        model.config.codebook_size,
        model.config.hop_length,
    ):
        raise BitstreamError(
            f"{args.input} was made by a codec with another sample rate, codebook size or hop "
            f"length than {model.source}"
        )
    theirs, ours = stream.envelope_stages, model.codec.envelope_stages(stream.n_q)
    if theirs != ours:
        raise BitstreamError(
            f"{args.input} carries {theirs} envelope codebooks of its {stream.n_q}, but {model.source} "
            f"reads {ours} at that rate (telucodec.codec.envelope): decode it with the model that encoded it"
        )
    if stream.n_q > model.config.n_q:
        raise BitstreamError(
            f"{args.input} has {stream.n_q} codes per frame; {model.source} has {model.config.n_q} codebooks"
        )
    if stream.num_frames == 0:
        raise BitstreamError(f"{args.input}: holds no frames, there is nothing to decode")
    for w in truncation:  # said once the file is known to be decodable
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    chunk = chunk_frames(model)
    decoder = StreamDecoder(
        model,
        n_q=stream.n_q,
        num_frames=stream.num_frames,
        num_samples=stream.num_samples,
        min_frames=chunk,
        max_frames=chunk,
    )
    with AudioBlockWriter(args.output, model.sample_rate) as writer:
        for codes in stream.blocks(chunk):
            writer.write(decoder.push(codes))
        writer.write(decoder.flush())
        writer.commit()
    print(f"{args.input} -> {args.output}: {writer.num_samples / model.sample_rate:.2f} s at {model.sample_rate} Hz")
