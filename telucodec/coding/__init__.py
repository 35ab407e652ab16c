"""Using a trained codec: load it, code audio of any length, and read and write ``.tlc`` files.

Checkpoints, the bitstream format (with its entropy coder) and chunked/streaming coding."""
