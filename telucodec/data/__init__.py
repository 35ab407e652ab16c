"""Data: reading and writing audio, the embedded Telugu corpus (eSpeak NG), folders of speech, speaker lists.

Nothing here knows about the codec; everything above it reads audio through this package."""
