"""The meta-model: training rows and splits, models, training, the model card, apply, scoring and comparison."""
