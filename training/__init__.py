"""MT-CLAR training: datasets and pairs, losses, the trainer, MT-CLAR+SL, project fine-tuning."""
