"""Answer generation from retrieved passages (extractive by default, or a checked LLM) and follow-ups."""
from .extractive import ExtractiveAnswerer, question_type
from .followup import Conversation, Turn, is_followup, rewrite
from .generate import AnswerGenerator, LLMAnswerer, make_generator
from .lang import detect_lang
from .llm_client import ChatClient
from .verify import CitationChecker

__all__ = ["AnswerGenerator", "ChatClient", "CitationChecker", "ExtractiveAnswerer", "LLMAnswerer", "Conversation",
           "Turn", "detect_lang", "is_followup", "make_generator", "question_type", "rewrite"]
