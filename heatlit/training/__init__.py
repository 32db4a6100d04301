"""Training and evaluation: the LightningModule, losses, per-decoder scoring, run orchestration."""
