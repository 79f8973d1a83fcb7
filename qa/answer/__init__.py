"""Answer generation from retrieved passages (extractive by default) and follow-up handling."""
from .extractive import ExtractiveAnswerer, question_type
from .followup import Conversation, Turn, is_followup, rewrite
from .lang import detect_lang

__all__ = ["ExtractiveAnswerer", "Conversation", "Turn", "detect_lang", "is_followup", "question_type", "rewrite"]
