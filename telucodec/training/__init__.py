"""Training a codec: the loop (``fit``), losses and their balancer, recipes, discriminators, training crops,
diagnostics, and the GPU ablation run."""
