"""Codes as tokens: the codec's codes read as the tokens of a small language model (chapter 18)."""
