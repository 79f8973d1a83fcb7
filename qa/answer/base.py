"""The :class:`Answerer` protocol and the abstention every answerer shares.

An answerer turns a question and its retrieved passages into an :class:`~qa.types.Answer` whose
quotes are verbatim article text. To add one: implement ``answer`` and ``stream`` in a file of
this package and name it in :func:`qa.answer.make_answerer` and the config's ``answerer`` choices.
"""
from __future__ import annotations

from typing import Iterator, Optional, Protocol, Sequence, Union, runtime_checkable

from ..types import Answer, Hit
from .lang import phrase


@runtime_checkable
class Answerer(Protocol):
    """What the :class:`~qa.Assistant` asks for an answer from retrieved passages."""

    name: str

    def answer(self, question: str, hits: Sequence[Hit], *, lang: Optional[str] = None,
               query: Optional[str] = None) -> Answer:
        """The answer (``found=False`` with the closest articles when the passages do not answer)."""
        ...

    def stream(self, question: str, hits: Sequence[Hit], *, lang: Optional[str] = None,
               query: Optional[str] = None) -> Iterator[Union[str, Answer]]:
        """Text pieces as they are written (an LLM's; none for an extractive answerer), then the answer."""
        ...


def abstain(question: str, hits: Sequence[Hit], *, lang: str, query: str, confidence: float = 0.0,
            answerer: str = "extractive") -> Answer:
    """The answer that declines: says the articles do not answer, in the question's language, and
    names the closest articles (``hits`` stay on the answer for display)."""
    titles: list[str] = []
    for h in hits:
        t = h.article.display_title
        if t not in titles:
            titles.append(t)
    text = phrase(lang, "not_found")
    if titles:
        text += f" {phrase(lang, 'closest')}: " + "; ".join(titles[:3]) + "."
    return Answer(question=question, text=text, citations=[], found=False, lang=lang, query=query,
                  hits=list(hits), confidence=round(confidence, 4), answerer=answerer)
