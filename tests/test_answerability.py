"""The decline decision from the selector and the span reader together (qa/answer/answerability.py),
and the lead read from the best candidate's paragraph (qa/answer/leads.py): the shipped model on the
real reader, the real encoder and the seed index."""
from __future__ import annotations

import json
from types import SimpleNamespace as NS

import numpy as np
import pytest

from qa.answer.answerability import CHOSEN_FEATURES, FEATURES, OTHER_FEATURES, PACKAGED, Answerability, features
from qa.answer.chooser import choice, chosen_reading
from qa.answer.leads import Reading, reader_lead
from qa.config import Config
from qa.errors import ConfigError


def test_packaged_model_is_small_readable_json_and_the_default_threshold():
    d = json.loads(PACKAGED.read_text(encoding="utf-8"))
    assert d["features"] == list(CHOSEN_FEATURES) and PACKAGED.stat().st_size < 10_000
    m = Answerability.load()
    assert m.names == CHOSEN_FEATURES
    assert Config().abstain_threshold == pytest.approx(m.threshold, abs=0.005)
    assert m.meta.get("questions", 0) > 1000 and "qa_idkmrc_valid.jsonl" in m.meta["data"]
    assert (PACKAGED.parent / "ANSWERABILITY.md").is_file()


def test_more_probable_span_and_less_probable_null_mean_more_answerable():
    m = Answerability.load()
    sure = m(0.8, [NS(probability=0.9, null=0.01), NS(probability=0.9, null=0.01)])
    unsure = m(0.8, [NS(probability=0.9, null=0.8), NS(probability=0.9, null=0.8)])
    assert unsure < sure
    assert m(0.2, [NS(probability=0.5, null=0.1)] * 2) < m(0.95, [NS(probability=0.5, null=0.1)] * 2)
    assert np.isfinite(features(0.0, [None, None])).all()  # nothing read: still a number
    assert np.isfinite(features(0.0, [None, None], [None])).all()


def test_the_other_paragraphs_reading_counts_and_a_model_without_it_still_loads(tmp_path):
    m = Answerability.load()
    own = [NS(probability=0.4, null=0.3), NS(probability=0.4, null=0.3)]
    found = m(0.8, own, [NS(probability=0.8, null=0.01)])
    nothing = m(0.8, own, [NS(probability=0.1, null=0.9)])
    assert found > nothing
    # no other paragraph read (reader_paragraphs = 1): as if it were as sure as the best candidate's
    assert m(0.8, own, []) == pytest.approx(m(0.8, own, [NS(probability=0.4, null=0.3)]))
    x = features(0.8, own)
    assert x.shape == (len(FEATURES),) and features(0.8, own, []).shape == (len(OTHER_FEATURES),)
    rng = np.random.default_rng(1)
    older = Answerability.fit(rng.normal(size=(200, len(FEATURES))), (rng.random(200) > 0.5).astype(float))
    assert older.names == FEATURES
    loaded = Answerability.load(older.save(tmp_path / "five.json"))
    assert loaded.names == FEATURES and loaded(0.8, own, [NS(probability=0.8, null=0.01)]) == pytest.approx(loaded(0.8, own))
    six = Answerability.load(Answerability.fit(rng.normal(size=(200, len(OTHER_FEATURES))),
                                               (rng.random(200) > 0.5).astype(float)).save(tmp_path / "six.json"))
    assert six.names == OTHER_FEATURES  # a model from before the chosen paragraph's features ignores that reading
    assert six(0.8, own, [], NS(probability=0.99, null=0.0)) == pytest.approx(six(0.8, own, []))
    with pytest.raises(ValueError, match="columns"):
        Answerability.fit(rng.normal(size=(50, 3)), (rng.random(50) > 0.5).astype(float))


def test_the_reading_of_the_paragraph_answered_from_counts():
    """The paragraph chooser may answer from another paragraph than the best candidate's: how sure the
    reader is there (span and "no answer") moves the confidence; without one, the best candidate's own
    reading (alone, as the chooser compares it) stands in."""
    m = Answerability.load()
    own = [NS(probability=0.3, null=0.4), NS(probability=0.35, null=0.3)]
    others = [NS(probability=0.9, null=0.01), NS(probability=0.1, null=0.9)]
    assert m(0.75, own, others, others[0]) > m(0.75, own, others, others[1])
    assert m(0.75, own, others) == pytest.approx(m(0.75, own, others, own[1]))
    x = features(0.75, own, others, others[0], names=CHOSEN_FEATURES)
    assert x.shape == (len(CHOSEN_FEATURES),) and x[-2] == pytest.approx(np.log(0.9))
    assert np.isfinite(features(0.0, [None, None], [None], None, names=CHOSEN_FEATURES)).all()
    with pytest.raises(ValueError, match="allowed"):
        features(0.75, own, others, names=("selector_logit",))


def test_fit_separates_and_bad_files_name_the_problem(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, len(FEATURES)))
    y = (x[:, 0] - x[:, 2] + 0.3 * rng.normal(size=400) > 0).astype(float)
    m = Answerability.fit(x, y)
    assert ((m.probability(x) > 0.5) == (y > 0)).mean() > 0.9
    p = m.save(tmp_path / "a.json")
    assert np.allclose(Answerability.load(p).probability(x), m.probability(x), atol=1e-4)
    d = json.loads(p.read_text())
    for bad, field in (({**d, "format": "x"}, "format"), ({**d, "features": ["a"]}, "features"),
                       ({**d, "weights": [1, 2]}, "weights"), ({**d, "threshold": 2}, "threshold"),
                       ({**d, "selector_floor": -1}, "selector_floor"), ({**d, "span_floor": 1.5}, "span_floor"),
                       ({**d, "span_floor": "high"}, "span_floor")):
        p.write_text(json.dumps(bad))
        with pytest.raises(ConfigError, match=field):
            Answerability.load(p)
    with pytest.raises(ConfigError, match="not found"):
        Answerability.load(tmp_path / "none.json")


def _cand(text, start, end, score, pair=False):
    return NS(article=NS(id="a", text=text), start=start, end=end, score=score, pair=pair,
              passage_start=0, passage_end=len(text))


def test_lead_from_the_paragraph_moves_the_quote_to_the_sentence_holding_it():
    text = "Vaksinasi digelar di Lapas Amuntai. Sebanyak 350 dosis disiapkan untuk warga binaan."
    best, other = _cand(text, 0, 35, 0.9), _cand(text, 36, len(text), 0.4)
    para = Reading(NS(start=45, end=48, probability=0.7, null=0.01), 0)
    sent = Reading(NS(start=0, end=9, probability=0.2, null=0.1), 0)
    lead, at, quote = reader_lead([para, sent], [best, other], 0.05)
    assert lead == "350" and text[at:at + 3] == "350" and quote is other
    assert reader_lead([para, sent], [best, other], 0.8) == (None, -1, best)  # not confident: no lead
    lone = Reading(NS(start=45, end=48, probability=0.7, null=0.01), 0)
    assert reader_lead([lone], [best], 0.05) == (None, -1, best)  # no candidate holds it


def test_confidence_is_the_models_probability_and_decides(assistant):
    a = assistant.answerer
    q = "Berapa vaksin yang dialokasikan untuk relawan Tagana?"
    hits = assistant.retrieve(q, 5)
    cands, sel_p, readings, p, threshold = a.assess(q, hits)
    own = [r.span for r in readings if r.cand is None]  # the best candidate's paragraph, and it
    others = [r.span for r in readings if r.cand is not None]
    assert readings is not None and len(own) == 2 and threshold == a.threshold
    assert len(readings) <= 2 + a.reader_paragraphs - 1  # and the best candidates of other paragraphs
    chosen = chosen_reading(readings, choice(a.chooser, cands, readings))  # the paragraph it answers from
    assert p == pytest.approx(a.answerability(sel_p, own, others, chosen))
    ans = assistant.ask(q)
    assert ans.found and ans.confidence == pytest.approx(p, abs=1e-3)
    strict = type(assistant)(assistant.store, assistant.config.replace(abstain_threshold=min(1.0, p + 0.01)),
                             embedder=assistant.embedder, index_dir=assistant.index_dir)
    declined = strict.ask(q)
    assert not declined.found and declined.hits  # declining still shows the closest articles


def test_below_the_selector_floor_the_reader_cannot_vouch(assistant):
    from dataclasses import replace

    a = assistant.answerer
    q = "Berapa vaksin yang dialokasikan untuk relawan Tagana?"
    hits = assistant.retrieve(q, 5)
    _, sel_p, _, p, threshold = a.assess(q, hits)
    assert a.answerability.selector_floor > 0 and sel_p >= a.answerability.selector_floor and p >= threshold
    packaged = a.answerability
    try:
        a.answerability = replace(packaged, selector_floor=min(1.0, sel_p + 0.01), span_floor=None)
        _, _, readings, p2, threshold2 = a.assess(q, hits)
        assert p2 == pytest.approx(p) and threshold2 > 1.0
        declined = a.answer(q, hits)  # its confidence is the selector's probability, not P(answerable)
        assert not declined.found and declined.confidence == pytest.approx(min(p, sel_p), abs=1e-4)
        # ... unless one of the reader's spans (of any paragraph read) is at least span_floor probable
        top = max(r.span.probability for r in readings if r.span is not None)
        a.answerability = replace(packaged, selector_floor=min(1.0, sel_p + 0.01), span_floor=top)
        assert a.assess(q, hits)[4] == threshold and a.answer(q, hits).found
        a.answerability = replace(packaged, selector_floor=min(1.0, sel_p + 0.01), span_floor=min(1.0, top + 0.01))
        assert a.assess(q, hits)[4] > 1.0 and not a.answer(q, hits).found
    finally:
        a.answerability = packaged


def test_the_span_floor_lifts_the_selector_floor_only_for_a_confident_reading(tmp_path):
    from types import SimpleNamespace as NS

    m = Answerability.load()
    assert m.selector_floor == pytest.approx(0.7) and m.span_floor == pytest.approx(0.7)
    sure, unsure = NS(probability=0.8, null=0.01), NS(probability=0.3, null=0.01)
    assert m.passes_floor(0.75, [])  # the selector alone clears its floor
    assert not m.passes_floor(0.5, [unsure, None]) and m.passes_floor(0.5, [unsure, None, sure])
    older = Answerability(m.weights, m.bias, m.mean, m.scale, m.threshold, {}, 0.7, m.names)  # a file without it
    assert older.span_floor is None and not older.passes_floor(0.5, [sure])
    d = m.to_dict()
    del d["span_floor"]
    p = tmp_path / "older.json"
    p.write_text(json.dumps(d))
    assert Answerability.load(p).span_floor is None
    assert Answerability.load(m.save(tmp_path / "copy.json")).span_floor == pytest.approx(m.span_floor)


def test_without_the_reader_the_selector_decides_at_its_own_threshold(assistant):
    off = type(assistant)(assistant.store, assistant.config.replace(reader="off"),
                          embedder=assistant.embedder, index_dir=assistant.index_dir)
    q = "Berapa vaksin yang dialokasikan untuk relawan Tagana?"
    cands, sel_p, readings, p, threshold = off.answerer.assess(q, off.retrieve(q, 5))
    assert readings is None and p == sel_p and threshold == off.answerer.selector.threshold


def test_a_long_quote_keeps_the_window_with_the_question_words():
    """A candidate longer than a quote, without a lead: the window kept holds the most of the
    question's words (not the first one met), so the answer next to them stays quoted."""
    from qa.answer.leads import MAX_QUOTE_CHARS, clip_quote

    first = ("Pada rapat virtual ini Kakanwil menyampaikan hal penting terkait PPKM Darurat kepada seluruh "
             "Kepala UPT di lingkungan Kanwil, terutama UPT yang berlokasi di tiga wilayah yang termasuk "
             "dalam daerah yang melaksanakan PPKM Darurat dan wilayah sekitarnya. ")
    second = ("Pada peraturan tersebut diatur bahwa kegiatan perkantoran di daerah PPKM Darurat dilaksanakan "
              "dengan WFH 100%, kecuali pada sektor esensial dan vital.")
    text = first + "Lalu rapat ditutup dengan doa bersama para peserta. " * 2 + second
    assert len(text) > MAX_QUOTE_CHARS
    c = NS(article=NS(text=text), start=0, end=len(text))
    terms = {"sektor", "kecuali", "aturan", "wfh", "daerah", "ppkm", "darurat"}
    s, e = clip_quote(c, None, terms)
    assert e - s <= MAX_QUOTE_CHARS and "sektor esensial dan vital" in text[s:e]
    assert text[s:e] == text[s:e].strip() and (s == 0 or text[s - 1].isspace())
    # with a lead, the window is around it, wherever the words are
    at = text.index("tiga wilayah")
    s, e = clip_quote(c, (at, at + len("tiga wilayah")), terms)
    assert s <= at and at + len("tiga wilayah") <= e and e - s <= MAX_QUOTE_CHARS
    assert clip_quote(NS(article=NS(text=second), start=0, end=len(second)), None, terms) == (0, len(second))


def test_a_long_quote_goes_where_the_reader_looked_even_without_a_lead(assistant):
    """No lead (the reader's span below ``reader_threshold``), a candidate longer than a quote: the
    window keeps the reader's span, not the one holding the most question words."""
    from qa.answer.leads import MAX_QUOTE_CHARS, clip_quote, reader_lead

    shy = type(assistant)(assistant.store, assistant.config.replace(reader_threshold=0.99, abstain_threshold=0.0,
                                                                    reader_paragraphs=1),  # the best candidate's paragraph
                          embedder=assistant.embedder, index_dir=assistant.index_dir)
    q = "Who monitors employees or clients isolated in UPT rooms?"
    a = shy.answerer
    cands, _, readings, _, _ = a.assess(q, shy.retrieve(q, 5))
    best = cands[0]
    span, at, _ = reader_lead(readings, cands, 0.0)
    assert best.end - best.start > MAX_QUOTE_CHARS and best.start <= at and at + len(span) <= best.end
    s, e = clip_quote(best, None, set(a.content_terms(q)))
    assert not (s <= at and at + len(span) <= e)  # the question words' window would miss it
    ans = shy.ask(q)
    assert ans.found and ans.lead is None and span in ans.citations[0].quote
    assert len(ans.citations[0].quote) <= MAX_QUOTE_CHARS + len(span)
