"""article-qa: question answering over news articles, with quoted sources.

>>> from qa import Assistant          # doctest: +SKIP
>>> assistant = Assistant.load("index")   # doctest: +SKIP
"""
from .assistant import Assistant
from .config import Config, load_config
from .errors import QAError
from .filters import Filter
from .ingest import load_corpus
from .stores import build_index
from .types import Answer, Article, Chunk, Citation, Hit

__all__ = ["Answer", "Assistant", "Article", "Chunk", "Citation", "Config", "Filter", "Hit", "QAError", "build_index", "load_config",
           "load_corpus"]
__version__ = "0.1.0"
