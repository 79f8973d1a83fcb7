"""Answer generators: the extractive answerer (default) and an LLM behind an OpenAI-compatible server.

Both follow :class:`~qa.answer.base.Answerer`: ``answer()`` returns an :class:`~qa.types.Answer`;
``stream()`` yields the reply text piece by piece (an LLM's tokens; nothing for the extractive
answerer) and then, last, the final ``Answer``. The LLM answer is never shown unchecked: its
sentences are checked against the passages they cite (``qa/answer/verify.py``), unsupported ones
are flagged or removed, and the sources panel quotes verbatim article sentences. When the server
cannot be used (unreachable, timeout, HTTP error), the extractive answer is returned instead,
with ``Answer.notice`` saying why.
"""
from __future__ import annotations

import logging
import re
import threading
from typing import Iterator, Optional, Sequence, Union

from ..errors import LLMError
from ..types import Answer, Hit
from .base import Answerer, abstain
from .extractive import ExtractiveAnswerer
from .lang import detect_lang, phrase
from .llm_client import ChatClient
from .verify import CitationChecker

log = logging.getLogger("qa")

NO_ANSWER = "NO_ANSWER"
MAX_PASSAGE_CHARS = 2000
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)

PROMPTS = {
    "id": {
        "system": ("Anda menjawab pertanyaan hanya dari potongan artikel berita bernomor yang diberikan. "
                   "Jawab singkat (satu sampai tiga kalimat) dalam bahasa Indonesia. Akhiri setiap kalimat "
                   "dengan penanda sumber seperti [1] atau [2] yang menunjuk potongan yang memuat isinya. "
                   "Jangan menambahkan angka, nama, atau fakta yang tidak ada di potongan. Jika potongan tidak "
                   f"menjawab pertanyaan, tulis hanya: {NO_ANSWER}"),
        "passages": "Potongan artikel",
        "question": "Pertanyaan",
    },
    "en": {
        "system": ("You answer questions only from the numbered news-article passages given. Answer briefly "
                   "(one to three sentences) in English. End every sentence with source markers such as [1] or "
                   "[2] naming the passages that contain what it says. Do not add numbers, names or facts that "
                   f"are not in the passages. If the passages do not answer the question, write only: {NO_ANSWER}"),
        "passages": "Passages",
        "question": "Question",
    },
}


def build_messages(question: str, hits: Sequence[Hit], lang: str) -> list[dict[str, str]]:
    """The chat messages: instructions in the question's language, numbered passages, the question."""
    p = PROMPTS.get(lang, PROMPTS["id"])
    blocks = []
    for n, h in enumerate(hits, start=1):
        a = h.article
        meta = ", ".join(x for x in (a.source, a.date) if x)
        head = f"[{n}] {a.display_title}" + (f" ({meta})" if meta else "")
        text = h.text if len(h.text) <= MAX_PASSAGE_CHARS else h.text[:MAX_PASSAGE_CHARS].rsplit(" ", 1)[0] + " …"
        blocks.append(f"{head}\n{text}")
    user = f"{p['passages']}:\n\n" + "\n\n".join(blocks) + f"\n\n{p['question']}: {question}"
    return [{"role": "system", "content": p["system"]}, {"role": "user", "content": user}]


def clean_reply(raw: str) -> str:
    """The reply without reasoning blocks (``<think>…</think>``) and surrounding space."""
    return _THINK.sub("", raw or "").strip()


def says_no_answer(text: str) -> bool:
    """Whether the model said the passages do not answer (the NO_ANSWER reply, or nothing)."""
    t = text.strip().strip("*_`\"'. ").upper().replace(" ", "_")
    return not t or t.startswith(NO_ANSWER)


class LLMAnswerer:
    """Answers written by an LLM from the retrieved passages, every sentence checked against them.

    ``client``: a :class:`ChatClient`; ``extractive``: the index's extractive answerer (the fallback,
    and the source of IDF, embedder and sentence candidates for the checks); ``unsupported``:
    ``"flag"`` keeps unsupported sentences, marked, ``"remove"`` drops them; ``concurrency``: the
    most requests this answerer has at the server at once (a streamed reply holds its slot until
    the stream ends or is closed); other questions wait for a slot. Thread-safe.
    """

    name = "openai"

    def __init__(self, client: ChatClient, extractive: ExtractiveAnswerer, *, unsupported: str = "flag",
                 concurrency: int = 2):
        if unsupported not in ("flag", "remove"):
            raise ValueError(f"unsupported must be 'flag' or 'remove'; got {unsupported!r}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 64:
            raise ValueError(f"concurrency must be an integer from 1 to 64; got {concurrency!r}")
        self.client = client
        self.extractive = extractive
        self.checker = CitationChecker(extractive)
        self.unsupported = unsupported
        self.concurrency = concurrency
        self._slots = threading.BoundedSemaphore(concurrency)

    @property
    def model(self) -> str:
        return self.client.model

    def answer(self, question: str, hits: Sequence[Hit], *, lang: Optional[str] = None,
               query: Optional[str] = None) -> Answer:
        """One checked answer (a non-streamed completion)."""
        lang = lang or detect_lang(question)
        if not hits:
            return self._tag(self.extractive.answer(question, hits, lang=lang, query=query))
        try:
            with self._slots:
                raw = self.client.chat(build_messages(question, hits, lang))
        except LLMError as e:
            return self._fallback(question, hits, lang, query, e)
        return self.finish(question, hits, raw, lang=lang, query=query)

    def stream(self, question: str, hits: Sequence[Hit], *, lang: Optional[str] = None,
               query: Optional[str] = None) -> Iterator[Union[str, Answer]]:
        """The model's text as it streams in, then the checked :class:`Answer`."""
        lang = lang or detect_lang(question)
        if not hits:
            yield self._tag(self.extractive.answer(question, hits, lang=lang, query=query))
            return
        parts: list[str] = []
        try:
            with self._slots:  # released when the stream ends, fails, or this generator is closed
                for piece in self.client.stream(build_messages(question, hits, lang)):
                    parts.append(piece)
                    yield piece
        except LLMError as e:
            yield self._fallback(question, hits, lang, query, e)
            return
        yield self.finish(question, hits, "".join(parts), lang=lang, query=query)

    def finish(self, question: str, hits: Sequence[Hit], raw: str, *, lang: str, query: Optional[str]) -> Answer:
        """The checked answer for the model's reply ``raw`` to ``question`` over ``hits``."""
        q = query or question
        text = clean_reply(raw)
        if says_no_answer(text):
            ans = self._tag(abstain(question, hits, lang=lang, query=q))
            ans.notice = "" if text else "the LLM sent an empty reply"
            return ans
        v = self.checker.verify(text, hits, lang=lang, unsupported=self.unsupported)
        checked = [c for c in v.checks if c.status != "unchecked"]
        found = bool(v.citations)
        if not found:
            base = abstain(question, hits, lang=lang, query=q)
            # flag mode keeps the (unsupported) text visible after the not-found sentence
            body = base.text + (" " + v.text if self.unsupported == "flag" and v.text else "")
            ans = self._tag(Answer(question=question, text=body, found=False, lang=lang, query=q, hits=list(hits)))
        else:
            conf = sum(c.lexical for c in checked if c.supported) / max(1, len(checked))
            ans = self._tag(Answer(question=question, text=v.text, citations=v.citations, found=True, lang=lang,
                                   query=q, hits=list(hits), confidence=round(conf, 4)))
        ans.checks = v.checks
        n_bad = sum(not c.supported for c in checked)
        if n_bad:
            log.info("LLM answer: %d of %d sentence(s) not supported by their passages (%s)", n_bad, len(checked),
                     self.unsupported)
        return ans

    def _tag(self, ans: Answer) -> Answer:
        ans.answerer, ans.model = self.name, self.model
        return ans

    def _fallback(self, question: str, hits: Sequence[Hit], lang: str, query: Optional[str], err: LLMError) -> Answer:
        log.warning("LLM answer failed, falling back to the extractive answer: %s", err)
        ans = self.extractive.answer(question, hits, lang=lang, query=query)
        ans.notice = f"{phrase(lang, 'llm_fallback')} ({err})"
        return ans


def make_answerer(config, extractive: ExtractiveAnswerer) -> Answerer:
    """The answerer ``config.answerer`` names (``"extractive"`` or ``"openai"``)."""
    if config.answerer == "openai":
        return LLMAnswerer(ChatClient.from_config(config), extractive, unsupported=config.llm_unsupported,
                           concurrency=config.llm_concurrency)
    return extractive
