"""Answerers: turn a question and its retrieved passages into an answer with verbatim quotes.

One protocol (:class:`Answerer`, ``base.py``), one file per answerer: ``extractive.py`` (default,
no LLM) and ``generate.py`` (an LLM behind an OpenAI-compatible server, every sentence checked by
``verify.py`` against the passages it cites).
"""
from .base import Answerer, abstain
from .extractive import ExtractiveAnswerer, question_type
from .generate import LLMAnswerer, make_answerer
from .lang import detect_lang
from .llm_client import ChatClient
from .verify import CitationChecker

AnswerGenerator = Answerer  # deprecated name (0.1): use Answerer
make_generator = make_answerer  # deprecated name (0.1): use make_answerer

__all__ = ["Answerer", "ChatClient", "CitationChecker", "ExtractiveAnswerer", "LLMAnswerer", "abstain",
           "detect_lang", "make_answerer", "question_type"]
