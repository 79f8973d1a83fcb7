"""``tune``: search the retrieval settings on half of the questions, check them on the other half.

The questions with a gold article in the index are split in two by a hash of their id (the same
split every run). Every setting of the :class:`SearchSpace` is scored on the *tuning* half; the
best one (ties go to the current setting) is then measured on the *held-out* half against the
index's current setting. The new settings are written into the index's manifest only when they
beat the current ones on the tuning half **and** are not worse on the held-out half.

With ``chunk_sizes``, each other chunk size gets a scratch index (see :mod:`.rebuild`) searched the
same way; when one of them wins under the same rule, the index is rebuilt with it.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..assistant import Assistant
from ..config import Config
from ..errors import ConfigError
from ..ingest import Corpus
from ..retrieval import Candidates
from ..stores import update_config
from .metrics import metric_headers, fast_scores, metric_names, ranx_scores
from .pipeline import (RETRIEVAL_KEYS, bm25_params_available, candidate_lists, describe, gold_ids,
                       retrieval_settings)
from .questions import Question, TooFewQuestionsError, split_halves

log = logging.getLogger("qa")

#: fewer usable questions than this and ``tune`` refuses: each half would be too small to tell
#: settings apart (one question moves MRR by 1/15 on a 15-question half)
MIN_QUESTIONS = 30
EPS = 1e-9


def per_article_for(articles: int, min_questions: int = MIN_QUESTIONS) -> int:
    """The ``qa questions --per-article`` that drafts at least ``min_questions`` from ``articles``
    articles, and one more (some articles hold fewer draftable sentences)."""
    return -(-min_questions // max(1, articles)) + 1


@dataclass(frozen=True)
class SearchSpace:
    """The settings ``tune`` tries (the current setting is always tried too).

    ``hybrid`` settings are every fusion of ``fusions`` (convex with each dense weight and pool, RRF
    with each constant, adaptive -- the packaged or configured query-adaptive model -- with each
    pool) at each candidate depth, for each BM25 ``(k1, b)``; ``bm25`` alone for each ``(k1, b)``;
    ``dense`` alone once.
    """

    modes: tuple[str, ...] = ("bm25", "dense", "hybrid")
    dense_weights: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    fusion_pools: tuple[str, ...] = ("lexical", "union")
    fusions: tuple[str, ...] = ("convex", "rrf", "adaptive")
    rrf_ks: tuple[int, ...] = (10, 30, 60)
    candidates: tuple[int, ...] = (50, 100, 200)
    bm25_params: tuple[tuple[float, float], ...] = tuple((k1, b) for k1 in (0.9, 1.2, 1.5, 2.0)
                                                         for b in (0.4, 0.6, 0.75, 0.9))

    def settings(self, current: dict[str, Any]) -> list[dict[str, Any]]:
        """Every setting to try, the current one first, without duplicates."""
        out = [dict(current)]
        for k1, b in self.bm25_params:
            base = {**current, "bm25_k1": k1, "bm25_b": b}
            if "bm25" in self.modes:
                out.append({**base, "mode": "bm25"})
            if "hybrid" in self.modes:
                for c in self.candidates:
                    hybrid = {**base, "mode": "hybrid", "candidates": c}
                    if "convex" in self.fusions:
                        out += [{**hybrid, "fusion": "convex", "fusion_pool": pool, "dense_weight": w}
                                for w in self.dense_weights for pool in self.fusion_pools]
                    if "rrf" in self.fusions:
                        out += [{**hybrid, "fusion": "rrf", "rrf_k": rk} for rk in self.rrf_ks]
                    if "adaptive" in self.fusions:
                        out += [{**hybrid, "fusion": "adaptive", "fusion_pool": pool} for pool in self.fusion_pools]
        if "dense" in self.modes:
            out.append({**current, "mode": "dense"})
        seen, unique = set(), []
        for s in out:
            key = tuple(sorted(_effective(s).items()))
            if key not in seen:
                seen.add(key)
                unique.append(s)
        return unique


def _effective(s: dict[str, Any]) -> dict[str, Any]:
    """The settings that change the ranking for ``s``'s mode (for de-duplicating the grid)."""
    if s["mode"] == "dense":
        return {"mode": "dense"}
    if s["mode"] == "bm25":
        return {"mode": "bm25", "bm25_k1": s["bm25_k1"], "bm25_b": s["bm25_b"]}
    own = {"convex": ("dense_weight", "fusion_pool"), "rrf": ("rrf_k",), "adaptive": ("fusion_pool",)}[s["fusion"]]
    keep = ["mode", "fusion", "candidates", "bm25_k1", "bm25_b", *own]
    return {k: s[k] for k in keep}


def _distance(settings: dict[str, Any], current: dict[str, Any]) -> int:
    """How many settings differ from the current ones."""
    return sum(settings.get(k) != current.get(k) for k in (*RETRIEVAL_KEYS, "chunk_size"))


@dataclass
class TuneReport:
    """What :func:`tune` found and did.

    ``before`` / ``after``: the index's current settings and the chosen ones; ``*_tune`` and
    ``*_heldout``: their metrics on each half (``metric`` is the one optimised). ``written``:
    whether the manifest was updated, and ``reason`` why (not).
    """

    index: str
    metric: str
    k: int
    questions: int
    usable: int
    tune_questions: int
    heldout_questions: int
    tried: int
    before: dict[str, Any]
    after: dict[str, Any]
    before_tune: dict[str, float]
    after_tune: dict[str, float]
    before_heldout: dict[str, float]
    after_heldout: dict[str, float]
    written: bool
    reason: str
    changes: dict[str, Any] = field(default_factory=dict)
    top: list[dict[str, Any]] = field(default_factory=list)  # best settings on the tuning half
    reference: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # bm25 / dense alone
    chunk_sizes: list[int] = field(default_factory=list)  # chunk sizes tried (empty: not tuned)
    rebuilt: bool = False  # the index was rebuilt with another chunk size
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def gain(self) -> float:
        """Held-out gain in the optimised metric (after - before)."""
        return self.after_heldout[self.metric] - self.before_heldout[self.metric]

    def tables(self) -> str:
        names = metric_names(self.k)
        heads = metric_headers(self.k)
        lines = [f"Tuned {self.metric} on {self.tune_questions} questions, checked on {self.heldout_questions} "
                 f"held-out ones ({self.tried} settings tried).", "",
                 "| half | settings | " + " | ".join(heads) + " |", "|---|---|" + "---:|" * len(heads)]
        rows = [("tuning", "before: " + describe(self.before), self.before_tune),
                ("tuning", "after: " + describe(self.after), self.after_tune),
                ("held-out", "before: " + describe(self.before), self.before_heldout),
                ("held-out", "after: " + describe(self.after), self.after_heldout)]
        for name, ref in self.reference.items():
            rows.append(("held-out", f"(reference) {name} alone", ref["heldout"]))
        for half, label, m in rows:
            lines.append(f"| {half} | {label} | " + " | ".join(f"{m[n]:.3f}" for n in names) + " |")
        lines += ["", f"Held-out {self.metric}: {self.before_heldout[self.metric]:.3f} -> "
                      f"{self.after_heldout[self.metric]:.3f} ({self.gain:+.3f}).",
                  ("Written to the index: " if self.written else "Not written: ") + self.reason]
        return "\n".join(lines)


def tune(assistant: Assistant, questions: Sequence[Question], *, metric: Optional[str] = None, k: int = 10,
         space: Optional[SearchSpace] = None, write: bool = True, min_questions: int = MIN_QUESTIONS,
         n_chunks: Optional[int] = None, progress: Optional[Callable[[str], None]] = None,
         chunk_sizes: Sequence[int] = (), corpus: "Optional[Corpus | str | os.PathLike]" = None) -> TuneReport:
    """Search retrieval settings on the tuning half of ``questions``; write the best into the index's
    manifest when it beats the current settings there (see the module docstring for the rule).

    ``metric`` (default ``mrr@k``) is optimised; ``write=False`` only reports. ``chunk_sizes`` also
    tries those chunk sizes (scratch indexes of ``corpus``: a :class:`~qa.ingest.Corpus` or a folder,
    default the folder recorded in the index), rebuilding the index when one wins. Raises
    :class:`TooFewQuestionsError` with fewer than ``min_questions`` answerable questions whose gold
    article is in the index.
    """
    t_start = time.perf_counter()
    metric = metric or f"mrr@{k}"
    names = metric_names(k)
    if metric not in names:
        raise ConfigError(f"metric must be one of {', '.join(names)}; got {metric!r}")
    space = space or SearchSpace()
    own = (assistant.config.bm25_k1, assistant.config.bm25_b)
    if len(bm25_params_available(assistant, [own, *space.bm25_params])) < len(set([own, *space.bm25_params])):
        log.info("the %s store scores BM25 only with its own k1=%s b=%s: not searching other BM25 parameters",
                 assistant.store.kind, *own)
        space = replace(space, bm25_params=(own,))
    n_chunks = n_chunks or max(50, 5 * k)
    usable = [q for q in questions if q.answerable and any(a in assistant.articles for a in q.articles)]
    if len(usable) < min_questions:
        per = per_article_for(len(assistant.articles), min_questions)
        raise TooFewQuestionsError(
            f"too few questions to tune on: {len(usable)} usable (answerable, with a gold article that is in the "
            f"index) of {len(questions)}; need at least {min_questions} so that each half has enough to tell "
            f"settings apart. Add questions, or draft more: `qa questions --per-article {per}` "
            f"({len(assistant.articles)} articles in the index).")
    tune_q, held_q = split_halves(usable)
    if min(len(tune_q), len(held_q)) < min_questions // 3:
        raise TooFewQuestionsError(f"the split of {len(usable)} questions left {len(tune_q)} to tune on and "
                                   f"{len(held_q)} to check on; need at least {min_questions // 3} in each")
    say = progress or (lambda msg: log.info("%s", msg))
    current_cfg = Config.from_dict(assistant.manifest.get("config", {}))
    current = retrieval_settings(current_cfg)
    sizes = [current_cfg.chunk_size] + [c for c in dict.fromkeys(chunk_sizes) if c != current_cfg.chunk_size]
    if len(sizes) > 1:
        current["chunk_size"] = current_cfg.chunk_size
        for c in sizes:
            Config().replace(chunk_size=c)  # validate before building anything
    grid = space.settings(current)
    say(f"{len(usable)} usable questions: {len(tune_q)} to tune on, {len(held_q)} held out; "
        f"{len(grid) * len(sizes)} settings to try" + (f" (chunk sizes {sizes})" if len(sizes) > 1 else ""))

    qrels_tune = {q.id: gold_ids(assistant, q.articles, current_cfg.fold_duplicates) for q in tune_q}
    qrels_held = {q.id: gold_ids(assistant, q.articles, current_cfg.fold_duplicates) for q in held_q}

    with tempfile.TemporaryDirectory(prefix="qa-tune-") as tmp:
        indexes: dict[int, Assistant] = {current_cfg.chunk_size: assistant}
        if len(sizes) > 1:
            from .rebuild import SeededEmbedder, corpus_for, scratch_index

            corpus_obj, folder = corpus_for(assistant, corpus)
            embedder = SeededEmbedder(assistant.embedder)
            embedder.seed(assistant.index_dir)
            for c in sizes[1:]:
                say(f"building a scratch index with chunk_size={c}")
                indexes[c] = scratch_index(assistant, c, corpus_obj, folder, Path(tmp), embedder)
        runs = {c: ranking_runner(a, usable, current_cfg, space, n_chunks, k) for c, a in indexes.items()}
        scored: list[tuple[float, int, dict[str, Any]]] = []
        for c in sizes:
            for s in grid:
                s = {**s, "chunk_size": c} if len(sizes) > 1 else s
                scored.append((fast_scores(qrels_tune, runs[c](s, qrels_tune), [metric])[metric], len(scored), s))
        best_v = max(v for v, _, _ in scored)
        # among settings tied with the best, the one that changes fewest settings (the current one wins a tie)
        _, _, best = min((x for x in scored if x[0] >= best_v - EPS),
                         key=lambda x: (_distance(x[2], current), x[1]))
        say(f"best on the tuning half: {describe(best)} ({metric} {best_v:.3f}; current {scored[0][0]:.3f})")
        run_now, run_best = runs[current_cfg.chunk_size], runs[best.get("chunk_size", current_cfg.chunk_size)]
        before_tune = ranx_scores(qrels_tune, run_now(current, qrels_tune), names)
        after_tune = ranx_scores(qrels_tune, run_best(best, qrels_tune), names)
        before_held = ranx_scores(qrels_held, run_now(current, qrels_held), names)
        after_held = ranx_scores(qrels_held, run_best(best, qrels_held), names)
        reference = {}
        for mode in ("bm25", "dense"):
            ref = {**current, "mode": mode}
            reference[mode] = {"tune": ranx_scores(qrels_tune, run_now(ref, qrels_tune), names),
                               "heldout": ranx_scores(qrels_held, run_now(ref, qrels_held), names)}
        changes = {key: best[key] for key in (*RETRIEVAL_KEYS, "chunk_size") if best.get(key) != current.get(key)}
        rebuilt = False
        if not changes:
            written, reason = False, "the current settings are already the best found on the tuning half."
        elif not after_tune[metric] > before_tune[metric] + EPS:
            written, reason = False, f"no setting beats the current one on the tuning half ({metric})."
        elif after_held[metric] < before_held[metric] - EPS:
            written, reason = False, (f"the best setting on the tuning half is worse on the held-out half "
                                      f"({metric} {before_held[metric]:.3f} -> {after_held[metric]:.3f}); "
                                      "keeping the current settings.")
        elif not write:
            written, reason = False, "dry run; the chosen settings beat the current ones on both halves."
        elif "chunk_size" in changes:
            from .rebuild import rebuild

            settings = {key: v for key, v in changes.items() if key != "chunk_size"}
            rep = rebuild(assistant, changes["chunk_size"], settings, corpus_obj, folder, embedder)
            written = rebuilt = True
            reason = (f"rebuilt {assistant.index_dir} with {', '.join(f'{key}={v}' for key, v in changes.items())} "
                      f"({rep.chunks} chunks; better on the tuning half, not worse on the held-out half).")
        else:
            update_config(assistant.index_dir, **changes)
            written = True
            reason = (f"{', '.join(f'{key}={v}' for key, v in changes.items())} in "
                      f"{assistant.index_dir}/manifest.json (better on the tuning half, not worse on the held-out half).")
    top = [{"settings": describe(s), metric: round(v, 4)}
           for v, _, s in sorted(scored, key=lambda x: (-x[0], x[1]))[:10]]
    report = TuneReport(index=str(assistant.index_dir), metric=metric, k=k, questions=len(questions),
                        usable=len(usable), tune_questions=len(tune_q), heldout_questions=len(held_q),
                        tried=len(scored), before=current, after=dict(best), before_tune=before_tune,
                        after_tune=after_tune, before_heldout=before_held, after_heldout=after_held,
                        written=written, reason=reason, changes=changes, top=top, reference=reference,
                        chunk_sizes=sizes if len(sizes) > 1 else [], rebuilt=rebuilt,
                        seconds=round(time.perf_counter() - t_start, 1))
    log.info("tune: %s", reason)
    return report


def ranking_runner(assistant: Assistant, usable: Sequence[Question], current_cfg: Config, space: SearchSpace,
                   n_chunks: int, k: int) -> Callable[[dict[str, Any], dict[str, list[str]]], dict[str, list[str]]]:
    """Candidate lists of every usable question on ``assistant``'s index, and a function that ranks
    the articles of some of those questions under given settings (as ``retrieve`` would)."""
    current = retrieval_settings(current_cfg)
    depth = max([n_chunks, current["candidates"], *space.candidates])
    bm25_params = [(current["bm25_k1"], current["bm25_b"])] + list(space.bm25_params)
    lists = candidate_lists(assistant, [q.question for q in usable], depth, bm25_params, cfg=current_cfg)
    index_of = {q.id: i for i, q in enumerate(usable)}
    pipe = assistant.pipeline

    def run(settings: dict[str, Any], qrels: dict[str, list[str]]) -> dict[str, list[str]]:
        cfg = current_cfg.replace(**{key: v for key, v in settings.items() if key != "chunk_size"})
        d = max(cfg.candidates, n_chunks)
        lex_all = lists.bm25[(cfg.bm25_k1, cfg.bm25_b)]
        out = {}
        for qid in qrels:
            i = index_of[qid]
            cands = Candidates(lex_all[i][:d], lists.dense[i][:d], lists.vectors[i], None, lists.tokens[i],
                               lists.indexes[(cfg.bm25_k1, cfg.bm25_b)], lists.sentences[i])
            out[qid] = pipe.article_ranking(pipe.fuse(cands, cfg.mode, cfg, n_chunks), n_chunks, k,
                                            fold=cfg.fold_duplicates)
        return out

    return run


__all__ = ["MIN_QUESTIONS", "SearchSpace", "TuneReport", "ranking_runner", "tune"]
