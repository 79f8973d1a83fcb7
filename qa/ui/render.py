"""What the web chat shows, as pure functions of :mod:`qa.types` objects (no Gradio here).

The chat bubble is Markdown (:func:`chat_markdown`, :func:`answer_markdown`); the sources panel
is HTML (:func:`sources_html`): for each citation, the article's title, outlet and date, the other
outlets that reported the same story (folded near-duplicates) and the quoted sentence highlighted in
its paragraph. Every piece of article text is HTML-escaped
before it reaches the page, and only ``http(s)`` links are made.
"""
from __future__ import annotations

import html
import re
from typing import Any, Iterator, Optional, Sequence

from ..answer.lang import detect_lang, phrase
from ..retrieval import MAX_QUERY_CHARS
from ..config import MODES
from ..filters import Filter
from ..types import Answer, Article, Hit

CONTEXT_CHARS = 360  # paragraph text shown on each side of a quote
MAX_CLOSEST = 3  # closest articles listed when no answer was found
UI_TEXT = {
    "id": {"error": "Maaf, terjadi kesalahan saat menjawab. Silakan coba lagi.",
           "thinking": "Mencari di artikel…", "open": "Buka artikel"},
    "en": {"error": "Sorry, something went wrong while answering. Please try again.",
           "thinking": "Searching the articles…", "open": "Open article"},
}
MONTHS = {
    "id": "Januari Februari Maret April Mei Juni Juli Agustus September Oktober November Desember".split(),
    "en": "January February March April May June July August September October November December".split(),
}

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]#|~$])")


def esc(text: Optional[str]) -> str:
    """``text`` HTML-escaped, quotes included (``None`` -> ``""``)."""
    return html.escape(text or "", quote=True)


def ui_text(lang: str) -> dict[str, str]:
    """The chat's own messages in ``lang`` (Indonesian for a language it has none for)."""
    return UI_TEXT.get(lang, UI_TEXT["id"])


# -- the chat bubble (Markdown) ----------------------------------------------------------------
def chat_markdown(text: str) -> str:
    """``text`` for the chat bubble, shown as written: HTML-escaped, then Markdown-escaped."""
    out = _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))
    out = re.sub(r"(?m)^(\s*)(\d+)\.", r"\1\2\\.", out)  # no accidental numbered lists
    return re.sub(r"(?m)^(\s*)([-+>])", r"\1\\\2", out)


def answer_markdown(answer: Answer, note: Optional[str] = None) -> str:
    """The chat bubble of a generated or fallen-back answer: the notice in italics, unsupported
    sentences' flags in bold, and which answerer wrote it."""
    md = chat_markdown((note + "\n\n" if note else "") + answer.text)
    flag = chat_markdown(phrase(answer.lang, "unsupported"))
    md = md.replace(flag, f"**{flag}**")
    if answer.notice:
        md = f"*{chat_markdown(answer.notice)}*\n\n{md}"
    return md + f"\n\n*{chat_markdown(phrase(answer.lang, 'answered_by'))}: {chat_markdown(answer.answerer_label)}*"


def word_prefixes(text: str, steps: Optional[int] = None) -> Iterator[str]:
    """Growing prefixes of ``text`` ending at word boundaries (how an extractive answer streams in):
    a word at a time, or with ``steps`` at most that many, evenly spread (the last is ``text``)."""
    ends = [m.end() for m in re.finditer(r"\S+\s*", text)]
    if steps is not None and len(ends) > steps > 0:
        ends = [ends[round((i + 1) * len(ends) / steps) - 1] for i in range(steps)]
    for end in ends:
        yield text[:end]


# -- the sources panel (HTML) ------------------------------------------------------------------
def date_text(value: Optional[str], lang: str) -> Optional[str]:
    """An ISO date written out in ``lang`` ("2021-03-05" -> "5 Maret 2021"); anything else as given."""
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", value or "")
    if not m or not 1 <= int(m.group(2)) <= 12:
        return value
    return f"{int(m.group(3))} {MONTHS.get(lang, MONTHS['id'])[int(m.group(2)) - 1]} {m.group(1)}"


def meta_html(article: Article, lang: str) -> str:
    """The outlet and date line of a card ("unknown" in ``lang`` for what the article lacks)."""
    unknown = phrase(lang, "unknown")
    source = article.source or unknown
    date = date_text(article.date, lang) or unknown
    return (f'<div class="qa-meta"><b>{esc(phrase(lang, "source").capitalize())}:</b> {esc(source)}'
            f' &middot; <b>{esc(phrase(lang, "date").capitalize())}:</b> {esc(date)}</div>')


def link_html(article: Article, lang: str) -> str:
    """A link to the article; empty unless its URL is ``http(s)://`` (no ``javascript:``/``data:``)."""
    url = article.url or ""
    if not re.match(r"https?://", url, re.I):
        return ""
    return (f'<a class="qa-link" href="{esc(url)}" target="_blank" rel="noopener noreferrer nofollow">'
            f'{esc(ui_text(lang)["open"])} &rarr;</a>')


def passage_html(text: str, ps: int, pe: int, qs: int, qe: int) -> str:
    """The paragraph ``text[ps:pe]`` with ``text[qs:qe]`` in ``<mark>`` (escaped, long sides trimmed
    to about ``CONTEXT_CHARS`` at a word boundary; the quote alone when the offsets do not nest)."""
    if not (0 <= ps <= qs <= qe <= pe <= len(text)) or pe == ps:
        ps, pe = qs, qe
    before, quote, after = text[ps:qs], text[qs:qe], text[qe:pe]
    if len(before) > CONTEXT_CHARS:
        before = "…" + before[-CONTEXT_CHARS:].split(" ", 1)[-1]
    if len(after) > CONTEXT_CHARS:
        after = after[:CONTEXT_CHARS].rsplit(" ", 1)[0] + "…"
    return f"{esc(before.lstrip())}<mark>{esc(quote)}</mark>{esc(after.rstrip())}"


def card_html(n: Any, article: Article, body: str, lang: str, also: Sequence[Article] = ()) -> str:
    """One source card: number, title, meta line, the outlets that also reported the story (``also``),
    ``body`` (already HTML) and the link."""
    return (f'<div class="qa-card"><div class="qa-card-head"><span class="qa-num">{esc(str(n))}</span><div>'
            f'<div class="qa-title">{esc(article.display_title)}</div>{meta_html(article, lang)}'
            f'{also_html(also, lang)}</div></div>'
            f'<blockquote class="qa-passage">{body}</blockquote>{link_html(article, lang)}</div>')


def also_html(articles: Sequence[Article], lang: str) -> str:
    """"Also reported by: <outlet> (<date>), …" for the other versions of a folded story ("" for none)."""
    if not articles:
        return ""
    items = [esc(a.source or a.display_title) + (f" ({esc(date_text(a.date, lang))})" if a.date else "")
             for a in articles]
    return (f'<div class="qa-also"><b>{esc(phrase(lang, "also_reported").capitalize())}:</b> '
            f'{", ".join(items)}</div>')


def also_reported(hits: Sequence[Hit], article: Article) -> tuple[Article, ...]:
    """The other versions of ``article``'s story among folded ``hits`` (a citation may name any member)."""
    for h in hits:
        members = (h.article, *h.also_reported_by)
        if h.also_reported_by and any(a.id == article.id for a in members):
            return tuple(a for a in members if a.id != article.id)
    return ()


def answerer_html(answer: Answer, lang: str) -> str:
    """Which answerer wrote ``answer`` ("(fallback)" when the extractive one stood in for an LLM)."""
    label = answer.answerer_label + (" (fallback)" if answer.notice and answer.answerer == "extractive" else "")
    return (f'<div class="qa-answerer">{esc(phrase(lang, "answered_by"))}: '
            f'<span class="qa-answerer-name">{esc(label)}</span></div>')


def sources_html(answer: Optional[Answer], lang: str = "id") -> str:
    """The sources panel for ``answer`` (citations, or the closest articles when none was found)."""
    if answer is None:
        return empty_sources_html(lang)
    lang = answer.lang or lang
    if answer.found and answer.citations:
        cards = [card_html(c.n, c.article,
                           passage_html(c.article.text, c.passage_start, c.passage_end, c.start, c.end), lang,
                           also_reported(answer.hits, c.article))
                 for c in answer.citations]
        return (answerer_html(answer, lang) + f'<div class="qa-panel-title">{esc(phrase(lang, "sources"))}</div>'
                + "".join(cards))
    seen: set[str] = set()
    cards = []
    for h in answer.hits:
        if h.article.id in seen:
            continue
        seen.add(h.article.id)
        excerpt = h.text if len(h.text) <= 2 * CONTEXT_CHARS else h.text[:2 * CONTEXT_CHARS].rsplit(" ", 1)[0] + "…"
        cards.append(card_html(len(seen), h.article, esc(excerpt), lang, h.also_reported_by))
        if len(cards) == MAX_CLOSEST:
            break
    head = answerer_html(answer, lang) + f'<div class="qa-note">{esc(phrase(lang, "not_found"))}</div>'
    if cards:
        head += f'<div class="qa-panel-title">{esc(phrase(lang, "closest"))}</div>'
    return head + "".join(cards)


def empty_sources_html(lang: str = "en") -> str:
    """The sources panel before the first question."""
    text = ("Sources appear here: each quote highlighted in its article, with title, outlet and date."
            if lang == "en" else "Sumber tampil di sini: setiap kutipan disorot dalam artikelnya, "
            "lengkap dengan judul, media dan tanggal.")
    return f'<div class="qa-panel-title">{esc(phrase(lang, "sources"))}</div><div class="qa-empty">{esc(text)}</div>'


def error_html(message: str) -> str:
    """The sources panel after a failed question (``message`` shown as text)."""
    return f'<div class="qa-empty">{esc(message)}</div>'


# -- what the user sent ------------------------------------------------------------------------
def settings(k: Any, mode: Any, default_mode: str) -> tuple[int, str]:
    """The chat's settings made safe: ``k`` as an int in 1..10 (5 when it is not a number) and
    ``mode`` one of :data:`qa.config.MODES` (``default_mode`` otherwise)."""
    try:
        k = min(10, max(1, int(k)))
    except (TypeError, ValueError, OverflowError):
        k = 5
    return k, mode if mode in MODES else default_mode


def api_settings(k: Any, mode: Any, default_mode: str) -> tuple[int, str]:
    """The settings of an ``/ask`` call, checked: ``k`` a whole number from 1 to 10 (5 when empty),
    ``mode`` one of :data:`qa.config.MODES` (``default_mode`` when empty); a ValueError naming the
    field otherwise (a program that sends ``mode="semantic"`` learns it, rather than getting hybrid)."""
    if k is None or k == "":
        k = 5
    elif isinstance(k, bool) or not isinstance(k, (int, float)) or k != k or not float(k).is_integer() \
            or not 1 <= k <= 10:
        raise ValueError(f"k must be a whole number from 1 to 10; got {str(k)[:20]!r}")
    if mode is None or mode == "":
        mode = default_mode
    elif mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {str(mode)[:20]!r}")
    return int(k), mode


def chat_filter(source: Any, date_from: Any, date_to: Any) -> Optional[Filter]:
    """The chat settings' filter (None when empty); ``ValueError`` naming the field when a date is wrong."""
    names = [source] if isinstance(source, str) else list(source or [])
    names = [str(n).strip() for n in names if str(n or "").strip()]
    try:
        return Filter.of(Filter(source=names, date_from=str(date_from or "").strip() or None,
                                date_to=str(date_to or "").strip() or None))
    except ValueError as e:
        raise ValueError(str(e).replace("date_from", "From date").replace("date_to", "To date")) from None


def filter_note(where: Optional[Filter], lang: str) -> Optional[str]:
    """The line shown above an answer given under a filter (plain text; the bubble escapes it)."""
    if where is None:
        return None
    return ("Hanya dari artikel: " if lang == "id" else "Only from articles: ") + where.describe(lang)


def clip_question(question: Any) -> tuple[str, Optional[str]]:
    """The question (stripped, at most ``MAX_QUERY_CHARS``) and a note in its language when it was cut."""
    q = str(question or "").strip()
    # lone surrogates (JSON "\ud800" escapes a browser sends for broken text) cannot be encoded
    # into the reply stream: replace them
    q = q.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if len(q) <= MAX_QUERY_CHARS:
        return q, None
    return q[:MAX_QUERY_CHARS], phrase(detect_lang(q), "too_long").format(n=MAX_QUERY_CHARS)
