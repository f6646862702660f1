"""Variants: SpliceAI-compatible delta scores of VCF records (``meta-spliceai variants``), from the base
model and, with a trained meta-model, from its corrected tracks."""
