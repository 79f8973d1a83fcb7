"""Typed results and records: :class:`Article`, :class:`Chunk`, :class:`DuplicateGroup`, :class:`Hit`."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Optional


@dataclass(frozen=True)
class Article:
    """One cleaned article.

    ``text`` is the canonical clean text: every chunk, quote and offset refers to it.
    ``title``, ``source`` (outlet), ``date`` (ISO ``YYYY-MM-DD`` where the text gives a full date),
    ``place`` (from the dateline) and ``url`` are ``None`` when unknown.
    ``date_text`` is the string ``date`` was read from, as written ("Kamis (8/7/2021)", a metadata value).
    """

    id: str
    title: Optional[str]
    text: str
    source: Optional[str] = None
    date: Optional[str] = None
    place: Optional[str] = None
    url: Optional[str] = None
    path: Optional[str] = None
    content_hash: str = ""
    date_text: Optional[str] = None

    @property
    def display_title(self) -> str:
        """The title, or the opening words of the text when the article has none."""
        if self.title:
            return self.title
        first = self.text.strip().split("\n", 1)[0]
        # drop a leading dateline ("Amuntai (ANTARA) - ") so the outlet is not repeated
        first = re.sub(r"^[A-Z][\w.'’ ]{1,40}?\s*(?:\([^()\n]{2,40}\)|,[^,\n–—-]{2,40}?)?\s*[-–—]\s+", "", first, count=1)
        if len(first) <= 90:
            return first
        return first[:90].rsplit(" ", 1)[0] + "…"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Article":
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True)
class Chunk:
    """A passage of an article: ``article.text[start:end] == text``."""

    id: int
    article_id: str
    start: int
    end: int
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DuplicatePair:
    """Two members of a group: ``jaccard_estimate`` (from the MinHash sketches), exact ``jaccard`` and
    ``containment`` (share of the smaller shingle set inside the larger) on the shingle sets; ``linked``
    is True when this pair itself passed verification (a group may also join two members through a third)."""

    a: str
    b: str
    jaccard_estimate: float
    jaccard: float
    containment: float
    linked: bool


@dataclass(frozen=True)
class DuplicateGroup:
    """Near-duplicate articles: ``representative`` (most complete version) and ``members`` (all ids,
    the representative first, then by the same completeness order)."""

    representative: str
    members: tuple[str, ...]
    pairs: tuple[DuplicatePair, ...]

    @property
    def others(self) -> tuple[str, ...]:
        """The members other than the representative ("also reported by")."""
        return self.members[1:]

    def to_dict(self) -> dict[str, Any]:
        return {"representative": self.representative, "members": list(self.members),
                "pairs": [asdict(p) for p in self.pairs]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DuplicateGroup":
        return cls(d["representative"], tuple(d["members"]), tuple(DuplicatePair(**p) for p in d.get("pairs", ())))


@dataclass
class Hit:
    """One retrieved passage.

    ``score`` is the fused score (higher is better; comparable within one result list only).
    ``bm25_rank`` and ``dense_rank`` are the 1-based ranks each retriever gave this passage
    (``None`` when that retriever did not return it among its candidates).
    ``also_reported_by``: when duplicate folding is on, the other versions of the same story
    (near-duplicate articles from other outlets) whose passages were folded into this hit;
    ``representative_id`` is then the id of the group's most complete version.
    """

    chunk: Chunk
    article: Article
    score: float
    rank: int = 0
    bm25_rank: Optional[int] = None
    dense_rank: Optional[int] = None
    bm25_score: Optional[float] = None
    dense_score: Optional[float] = None
    also_reported_by: tuple[Article, ...] = ()
    representative_id: Optional[str] = None

    @property
    def representative(self) -> Article:
        """The most complete version of this hit's story (its own article when it has no duplicate)."""
        return next((a for a in self.also_reported_by if a.id == self.representative_id), self.article)

    @property
    def text(self) -> str:
        """The passage text (a verbatim slice of ``article.text``)."""
        return self.chunk.text

    @property
    def start(self) -> int:
        """Start offset of the passage in ``article.text``."""
        return self.chunk.start

    @property
    def end(self) -> int:
        """End offset (exclusive) of the passage in ``article.text``."""
        return self.chunk.end

    @property
    def article_id(self) -> str:
        return self.article.id

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "score": self.score,
            "article_id": self.article.id,
            "title": self.article.title,
            "source": self.article.source,
            "date": self.article.date,
            "chunk_id": self.chunk.id,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "bm25_rank": self.bm25_rank,
            "dense_rank": self.dense_rank,
            "also_reported_by": [{"article_id": a.id, "title": a.title, "source": a.source, "date": a.date}
                                 for a in self.also_reported_by],
            "representative_id": self.representative_id,
        }


@dataclass(frozen=True)
class Citation:
    """A verbatim quote backing an answer: ``article.text[start:end] == quote``.

    ``n`` is the marker number used in the answer text (``[n]``); ``passage_start`` and
    ``passage_end`` delimit the paragraph around the quote (for display with highlighting).
    """

    n: int
    article: Article
    quote: str
    start: int
    end: int
    score: float
    passage_start: int = 0
    passage_end: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "article_id": self.article.id, "title": self.article.display_title,
                "source": self.article.source, "date": self.article.date, "quote": self.quote,
                "start": self.start, "end": self.end, "score": self.score,
                "passage": self.article.text[self.passage_start:self.passage_end],
                "passage_start": self.passage_start, "passage_end": self.passage_end}


@dataclass
class SentenceCheck:
    """The citation check of one generated sentence (see ``qa/answer/verify.py``).

    ``text``: the sentence as generated; ``cited``: the passage numbers its markers named that exist;
    ``dropped``: marker numbers that pointed at no passage (removed from the answer); ``lexical``:
    IDF-weighted share of its content words found in the cited passages; ``dense``: cosine similarity
    with the best sentence of those passages; ``missing``: numbers and names in it that no cited
    passage contains. ``status``: ``"supported"``, ``"flagged"`` (kept, marked as unsupported),
    ``"removed"`` or ``"unchecked"`` (no content words, e.g. "Berikut jawabannya:"). ``reason`` says
    why in words; ``citation`` is the number of the answer's citation backing it (after renumbering).
    """

    text: str
    status: str
    supported: bool
    cited: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    lexical: float = 0.0
    dense: float = 0.0
    missing: list[str] = field(default_factory=list)
    reason: str = ""
    citation: Optional[int] = None
    marker_added: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Answer:
    """The answer to one question.

    ``text`` is a short answer with ``[n]`` markers pointing at ``citations``; ``found`` is
    False when the articles do not answer the question (``text`` then says so and
    ``citations`` is empty; ``hits`` still lists the closest passages). ``query`` is the
    question as used for retrieval (a follow-up rewritten with earlier turns' terms).
    ``answerer``: ``"extractive"`` or ``"openai"`` (then ``model`` names the LLM and ``checks``
    lists the citation check of every generated sentence). ``notice``: a message for the user, e.g.
    that the LLM server was unreachable and the extractive answer is shown instead. ``lead``: the
    short span the answer leads with (a count, a name, a date; verbatim from citation 1), or None
    when the answer is the quoted sentence alone. ``confidence``: the extractive answerer's
    P(answerable) (docs/answers.md); for a question its selector floor declined, the selector's
    probability.
    """

    question: str
    text: str
    citations: list[Citation] = field(default_factory=list)
    found: bool = True
    lang: str = "id"
    query: str = ""
    hits: list[Hit] = field(default_factory=list)
    confidence: float = 0.0
    answerer: str = "extractive"
    model: str = ""
    checks: list[SentenceCheck] = field(default_factory=list)
    notice: str = ""
    lead: Optional[str] = None

    @property
    def answerer_label(self) -> str:
        """``"extractive"`` or ``"LLM: <model>"`` (for display)."""
        return f"LLM: {self.model}" if self.answerer != "extractive" and self.model else self.answerer

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question, "text": self.text, "found": self.found, "lang": self.lang,
                "query": self.query, "confidence": self.confidence, "answerer": self.answerer,
                "model": self.model, "notice": self.notice, "lead": self.lead, "checks": [c.to_dict() for c in self.checks],
                "citations": [c.to_dict() for c in self.citations],
                "closest": [h.to_dict() for h in self.hits[:3]] if not self.found else []}
