"""The base model (SpliceAI / OpenSpliceAI ensemble), the prediction store and the predict stage."""
