"""Adapt the embedding model to the corpus's language (``qa adapt``): fine-tune a
sentence-transformers model on labelled (question, passage) pairs or on self-supervised pairs
built from the user's own articles. Needs the ``adapt`` extra (``datasets``, ``accelerate``).

>>> from qa.adaptation import adapt                                          # doctest: +SKIP
>>> report = adapt(pairs="train.jsonl", out="models/minilm-id", epochs=1)    # doctest: +SKIP

See ``docs/adaptation.md`` for measured figures and what self-supervised adaptation buys.
"""
from .pairs import Pair, corpus_pairs, load_articles, mine_hard_negatives, read_pairs
from .train import LOSSES, AdaptError, AdaptReport, adapt, build_pairs, record_figures

__all__ = ["AdaptError", "AdaptReport", "LOSSES", "Pair", "adapt", "build_pairs", "corpus_pairs", "load_articles",
           "mine_hard_negatives", "read_pairs", "record_figures"]
