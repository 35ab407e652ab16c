"""User-facing errors and warnings: one line, naming the file, never a traceback."""


class TeluCodecError(Exception):
    """A problem the user can fix (bad path, bad file, bad option). The CLI prints it as one line."""


class BitstreamError(TeluCodecError):
    """A .tlc file is truncated, corrupted or not a TeluCodec bitstream."""


class CheckpointError(TeluCodecError):
    """A checkpoint is missing, truncated, corrupted or not safe to load."""


class DataError(TeluCodecError):
    """A data folder holds no usable audio."""


class BadAudioWarning(UserWarning):
    """An audio file was skipped; the message names the file and the reason."""
