"""Maintaining a built dataset: patch, dedup, validate, summary (and its HTML report), merge."""
