"""Follow-up questions: rewrite a question that leans on earlier turns before retrieval.

"Siapa kepala lapasnya?" after a question about Lapas Amuntai becomes
"Siapa kepala lapas? Lapas Amuntai ...": the follow-up keeps its own words (with the "-nya"
clitic taken off) and gains the earlier answer's lead (what "his" or "dia" most often points at:
"What is his rank?" after "Who heads BIN's South Kalimantan office?" looks for Heri Armanto's rank),
then the entities and content words of the earlier turn(s). No LLM.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


from .analyzer import STOPWORDS
from .retrieval import MAX_QUERY_CHARS
from .answer.spans import _NYA_KEEP as _NYA_EXCEPTIONS, QUESTION_WORDS, strip_clitic

ANAPHORA = {
    "itu", "tersebut", "ini", "dia", "beliau", "mereka", "sana", "situ", "sini", "tadi", "pihaknya",
    "he", "she", "it", "they", "him", "her", "his", "its", "their", "them", "there", "that", "this", "those",
    "these", "same",
}
MAX_LEAD_WORDS = 6  # a longer lead is a phrase, not the thing a pronoun points at
_ENTITY = re.compile(r"\b(?:[A-Z][\w-]*|[A-Z]{2,}|\d[\w.,/-]*)(?:\s+(?:[A-Z][\w-]*|[IVX]+[a-zA-Z]?|\d+))*")


@dataclass
class Turn:
    question: str
    query: str
    answer_text: str = ""
    article_ids: list[str] = field(default_factory=list)
    lead: str = ""  # the answer's lead (Answer.lead), "" when it had none or declined


def _content_words(text: str) -> list[str]:
    words = re.findall(r"[\w-]+", text.lower())
    return [w for w in words if w not in STOPWORDS and w not in QUESTION_WORDS and w not in ANAPHORA and len(w) > 1]


def is_followup(question: str) -> bool:
    """Whether the question leans on an earlier turn (pronoun, '-nya', 'itu', or too few content words)."""
    words = re.findall(r"[\w-]+", question.lower())
    if any(w in ANAPHORA for w in words):
        return True
    if any(w.endswith("nya") and len(w) > 5 and w not in _NYA_EXCEPTIONS for w in words):
        return True
    return len(_content_words(question)) <= 1


def entities(text: str) -> list[str]:
    """Capitalised phrases and numbers of ``text`` (names, places, organisations)."""
    out = []
    for m in _ENTITY.finditer(text):
        words = m.group(0).split()
        while words and (words[0].lower() in QUESTION_WORDS or words[0].lower() in STOPWORDS):
            words = words[1:]  # a capitalised question word opening the sentence ("Siapa Kadinsos Jatim")
        e = " ".join(words)
        if not e or e.lower() in ANAPHORA:  # stop and question words went above: both sets are single words
            continue
        out.append(e)
    return list(dict.fromkeys(out))


def rewrite(question: str, history: list[Turn], *, max_terms: int = 12) -> str:
    """The retrieval query for ``question`` given earlier turns (unchanged when not a follow-up)."""
    if not history or not is_followup(question):
        return question
    own = " ".join(strip_clitic(w) for w in question.split())
    prev = history[-1]
    # The earlier query already carries its own context when it was itself a follow-up.
    base = prev.query or prev.question
    ents = ([prev.lead] if prev.lead and len(prev.lead.split()) <= MAX_LEAD_WORDS else []) + entities(prev.question)
    words = _content_words(base)
    own_words = set(_content_words(own))
    extra: list[str] = []
    for e in ents + words:
        if e.lower() not in own_words and e not in extra:
            extra.append(e)
    return own + " " + " ".join(extra[:max_terms]) if extra else own


class Conversation:
    """A multi-turn conversation with an :class:`~qa.Assistant` (one per chat session).

    >>> chat = assistant.conversation()                  # doctest: +SKIP
    >>> chat.ask("Berapa warga binaan Lapas Amuntai yang divaksin?")   # doctest: +SKIP
    >>> chat.ask("Siapa kepala lapasnya?")              # doctest: +SKIP
    """

    def __init__(self, assistant, *, max_turns: int = 8):
        self.assistant = assistant
        self.history: list[Turn] = []
        self.max_turns = max_turns

    def rewrite(self, question: str) -> str:
        return rewrite(question, self.history)

    def _query(self, question):
        # the assistant checks the question (type, length); rewrite what it will use
        return self.rewrite(question.strip()[:MAX_QUERY_CHARS]) if isinstance(question, str) else None

    def ask(self, question: str, **kwargs):
        answer = self.assistant.ask(question, query=self._query(question), **kwargs)
        self._record(question, answer)
        return answer

    def ask_stream(self, question: str, **kwargs):
        """Streamed :meth:`ask`: text pieces, then the answer (recorded in the history)."""
        for item in self.assistant.ask_stream(question, query=self._query(question), **kwargs):
            if not isinstance(item, str):
                self._record(question, item)
            yield item

    def _record(self, question: str, answer) -> None:
        self.history.append(Turn(question=question, query=answer.query, answer_text=answer.text,
                                 article_ids=[c.article.id for c in answer.citations],
                                 lead=(answer.lead or "") if answer.found else ""))
        del self.history[:-self.max_turns]

    def reset(self) -> None:
        self.history.clear()
