"""Measuring a codec: metrics, the one scoring path, the classical baselines (Opus, AMR-NB, Codec2), the
unseen-voices yardstick and the reading of multi-seed ablations."""
