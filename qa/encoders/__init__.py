"""Encoders: text to L2-normalised vectors for dense retrieval (sentence-transformers; more backends
behind the same protocol)."""
