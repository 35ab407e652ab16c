"""The codec that ships: encoder, residual vector quantizer, decoder heads, envelope codebooks, post-filter.

The seven fixes of the story are switches read here (``telucodec.fixes``); training, files and measurement live
elsewhere, so this package is the whole network a trained model file describes."""
