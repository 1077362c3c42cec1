"""Training: checkpoints and the training loop."""
