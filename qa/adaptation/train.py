"""``adapt``: fine-tune a sentence-transformers model on (query, passage) pairs.

Uses the library's own :class:`SentenceTransformerTrainer` with in-batch negatives
(MultipleNegativesRankingLoss; batches never hold the same text twice), optionally one BM25-mined
hard negative per pair. The result is a normal sentence-transformers folder, written atomically,
with a card (``adaptation.json`` and ``ADAPTATION.md``: base model, data, settings, figures).
Nothing is downloaded from or uploaded to a model hub.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from ..hashing import file_sha256
from ..encoders.identity import E5_MODELS, model_fingerprint, pick_device, resolve_model
from ..config import DEFAULT_MODEL
from ..errors import ConfigError, QAError
from .pairs import Pair, corpus_pairs, load_articles, mine_hard_negatives, read_pairs

log = logging.getLogger("qa")

LOSSES = ("mnrl", "cached-mnrl")
CARD_JSON = "adaptation.json"
CARD_MD = "ADAPTATION.md"


class AdaptError(QAError):
    """Adaptation cannot run as asked (the message says why and what to do)."""


@dataclass
class AdaptReport:
    """What :func:`adapt` did (also written to ``<out>/adaptation.json``)."""

    out: str
    base: str
    mode: str  # "pairs" or "corpus"
    data: dict[str, Any]
    settings: dict[str, Any]
    pairs: int
    hard_negatives: int
    steps: int
    seconds: float
    train_loss: Optional[float]
    device: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be an integer between {lo} and {hi}; got {value!r}")


def _default_out(base: str, pairs: Optional[str], corpus: Optional[str]) -> Path:
    src = Path(pairs or corpus or "data")
    stem = src.stem if src.suffix else src.name
    return Path("models") / f"{Path(base).name}-{'pairs' if pairs else 'corpus'}-{stem or 'data'}"


def build_pairs(*, pairs: Optional[str | os.PathLike] = None, corpus: Optional[str | os.PathLike] = None,
                max_pairs: Optional[int] = None, chunk_size: int = 700, seed: int = 13,
                ) -> tuple[list[Pair], dict[str, Any]]:
    """The training pairs and a description of the data (for the card)."""
    if pairs is not None:
        files = [Path(p) for p in (pairs if isinstance(pairs, (list, tuple)) else [pairs])]
        out: list[Pair] = []
        info: dict[str, Any] = {"files": [], "skipped_unanswerable": 0}
        for f in files:
            got, skipped = read_pairs(f)
            out += got
            info["files"].append({"path": str(f), "pairs": len(got), "sha256": file_sha256(f)})
            info["skipped_unanswerable"] += skipped
        if max_pairs is not None and len(out) > max_pairs:
            import random

            out = random.Random(seed).sample(out, max_pairs)
        info["pairs"] = len(out)
        return out, info
    corp = load_articles(corpus)
    if not corp.articles:
        raise AdaptError(f"no readable article in {corpus}: nothing to build training pairs from")
    out = corpus_pairs(corp, max_pairs=max_pairs, chunk_size=chunk_size, seed=seed)
    if len(out) < 2:
        raise AdaptError(f"{corpus}: only {len(out)} self-supervised pair(s) could be built (articles need "
                         "chunks of at least two sentences); add articles or give labelled --pairs")
    titles = sum(p.source.endswith("(title)") for p in out)
    return out, {"corpus": str(corpus), "articles": len(corp.articles), "pairs": len(out),
                 "inverse_cloze_pairs": len(out) - titles, "title_pairs": titles}


def adapt(*, pairs: Optional[str | os.PathLike | Sequence[str | os.PathLike]] = None,
          corpus: Optional[str | os.PathLike] = None, base: str = DEFAULT_MODEL,
          out: Optional[str | os.PathLike] = None, epochs: int = 1, batch_size: int = 32,
          max_seq_length: int = 256, max_pairs: Optional[int] = None, learning_rate: float = 2e-5,
          hard_negatives: bool = False, negatives_from: Sequence[tuple[str, str]] = (), loss: str = "mnrl",
          device: str = "auto", seed: int = 13, chunk_size: int = 700, overwrite: bool = False,
          progress: bool = True) -> AdaptReport:
    """Fine-tune ``base`` on labelled ``pairs`` (JSONL file(s)) or on self-supervised pairs from the
    articles of ``corpus`` (a folder, or a JSONL pool file); write the model to ``out``.

    ``hard_negatives``: add to each pair the passage BM25 ranks highest for its question among the
    other pairs' passages and ``negatives_from`` ((text, article id) tuples, e.g. an index's chunks)
    that is not from the same article and holds no gold answer. ``loss``: ``"mnrl"``
    (MultipleNegativesRankingLoss) or ``"cached-mnrl"`` (same loss, large batches in small memory).
    """
    if (pairs is None) == (corpus is None):
        raise ConfigError("give exactly one of pairs (labelled JSONL) or corpus (articles for self-supervised pairs)")
    _check_int("epochs", epochs, 1, 100)
    _check_int("batch_size", batch_size, 2, 4096)
    _check_int("max_seq_length", max_seq_length, 16, 512)
    _check_int("seed", seed, 0, 2**31 - 1)
    if max_pairs is not None:
        _check_int("max_pairs", max_pairs, 2, 10**8)
    if loss not in LOSSES:
        raise ConfigError(f"loss must be one of {', '.join(LOSSES)}; got {loss!r}")
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not 0 < learning_rate < 1:
        raise ConfigError(f"learning_rate must be a number between 0 and 1; got {learning_rate!r}")
    if base in E5_MODELS:  # the engine's model as a sentence-transformers folder, converted once into a cache
        from ..encoders.e5_convert import convert_e5

        base_path = str(convert_e5())
    else:
        base_path = resolve_model(base)
    out_dir = Path(out) if out is not None else _default_out(base, None if pairs is None else str(
        pairs if not isinstance(pairs, (list, tuple)) else pairs[0]), None if corpus is None else str(corpus))
    if out_dir.exists() and not (out_dir.is_dir() and not any(out_dir.iterdir())) and not overwrite:
        raise AdaptError(f"{out_dir} already exists; choose another --out or pass --force to replace it")
    try:
        import datasets  # noqa: F401
        import accelerate  # noqa: F401
    except ImportError as e:
        raise ImportError(f"adapting the model needs the 'adapt' extra: pip install 'article-qa[adapt]' ({e})") from e

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    train, data_info = build_pairs(pairs=pairs, corpus=corpus, max_pairs=max_pairs, chunk_size=chunk_size, seed=seed)
    if len(train) < 2:
        raise AdaptError("at least two training pairs are needed (in-batch negatives)")
    n_neg = 0
    if hard_negatives:
        cands = [(p.positive, p.group) for p in train] + list(negatives_from)
        t0 = time.perf_counter()
        train, n_neg = mine_hard_negatives(train, cands, seed=seed)
        log.info("mined hard negatives for %d of %d pairs in %.0fs", n_neg, len(train), time.perf_counter() - t0)
    dev = pick_device(device)
    t0 = time.perf_counter()
    model, steps, train_loss = _train(train, base_path, dev, epochs=epochs, batch_size=batch_size,
                                      max_seq_length=max_seq_length, learning_rate=learning_rate, loss=loss,
                                      seed=seed, progress=progress, with_negatives=n_neg > 0)
    seconds = time.perf_counter() - t0
    settings = {"epochs": epochs, "batch_size": batch_size, "max_seq_length": max_seq_length,
                "learning_rate": learning_rate, "loss": loss, "hard_negatives": hard_negatives,
                "max_pairs": max_pairs, "seed": seed, "chunk_size": chunk_size,
                "batch_sampler": "no_duplicates", "warmup_ratio": 0.1}
    report = AdaptReport(out=str(out_dir), base=base, mode="pairs" if pairs is not None else "corpus",
                         data=data_info, settings=settings, pairs=len(train), hard_negatives=n_neg, steps=steps,
                         seconds=round(seconds, 1), train_loss=train_loss, device=dev)
    _save(model, out_dir, report, base_path, overwrite=overwrite)
    log.info("adapted %s on %d pairs in %.0fs -> %s", base, len(train), seconds, out_dir)
    return report


def _train(train: Sequence[Pair], base_path: str, device: str, *, epochs: int, batch_size: int,
           max_seq_length: int, learning_rate: float, loss: str, seed: int, progress: bool,
           with_negatives: bool):
    from datasets import Dataset
    from sentence_transformers import (SentenceTransformer, SentenceTransformerTrainer,
                                       SentenceTransformerTrainingArguments)
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    model = SentenceTransformer(base_path, device=device, local_files_only=True)
    inference_length = model.max_seq_length
    model.max_seq_length = max_seq_length
    columns: dict[str, list[str]] = {"anchor": [p.query for p in train], "positive": [p.positive for p in train]}
    if with_negatives:
        import random

        rng = random.Random(seed)
        def other(p: Pair) -> str:  # a pair without a mined negative gets another article's passage
            for _ in range(20):
                q = rng.choice(train)
                if q.group != p.group:
                    return q.positive
            return q.positive

        columns["negative"] = [p.negative if p.negative is not None else other(p) for p in train]
    dataset = Dataset.from_dict(columns)
    if loss == "cached-mnrl":
        train_loss = losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=min(32, batch_size),
                                                               show_progress_bar=False)
    else:
        train_loss = losses.MultipleNegativesRankingLoss(model)
    steps_per_epoch = max(1, -(-len(train) // batch_size))
    total = steps_per_epoch * epochs
    with tempfile.TemporaryDirectory(prefix="qa-adapt-") as tmp:
        args = SentenceTransformerTrainingArguments(
            output_dir=tmp, num_train_epochs=epochs, per_device_train_batch_size=batch_size,
            learning_rate=learning_rate, warmup_steps=max(1, int(0.1 * total)), seed=seed, data_seed=seed,
            batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="no", report_to="none",
            logging_steps=max(1, total // 20), disable_tqdm=not progress, use_cpu=device == "cpu",
            dataloader_num_workers=0, bf16=device == "cuda" and _bf16_ok(), prompts=_prompts(model, columns))
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=train_loss,
                                             callbacks=[_EtaLog(total)])
        if not progress:  # no bar: the time estimate goes to the log, and nothing is printed
            from transformers import PrinterCallback

            trainer.remove_callback(PrinterCallback)
        log.info("training on %d pairs: %d step(s) of %d, %d epoch(s), max %d tokens, on %s", len(train), total,
                 batch_size, epochs, max_seq_length, device)
        result = trainer.train()
    # Training may cut passages shorter to save time; the index embeds them at the base model's length.
    model.max_seq_length = inference_length
    return model, int(result.global_step), (round(float(result.training_loss), 4)
                                            if result.training_loss is not None else None)


def _prompts(model, columns) -> Optional[dict[str, str]]:
    """Train with the model's own query/passage convention (E5: ``query: `` / ``passage: ``)."""
    named = dict(getattr(model, "prompts", None) or {})
    if "query" not in named and "passage" not in named:
        return None
    role = {"anchor": "query", "positive": "passage", "negative": "passage"}
    return {c: named[role[c]] for c in columns if role.get(c) in named}


def _bf16_ok() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    except Exception:  # noqa: BLE001 - no usable GPU: train in float32
        return False


def _EtaLog(total: int):
    """A trainer callback that logs progress with a time estimate (for logs without a progress bar)."""
    from transformers import TrainerCallback

    class EtaLog(TrainerCallback):
        def __init__(self) -> None:
            self.t0 = time.perf_counter()
            self.every = max(1, total // 10)

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001 - transformers' signature
            step = state.global_step
            if step == 1 or step % self.every == 0 or step == total:
                spent = time.perf_counter() - self.t0
                left = spent / step * (total - step)
                log.info("adapt: step %d/%d, %.0fs spent, about %.0fs left", step, total, spent, left)

    return EtaLog()


def _save(model, out_dir: Path, report: AdaptReport, base_path: str, *, overwrite: bool) -> None:
    """Write the model and its card into a temporary folder beside ``out_dir``, then rename it."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".tmp-{out_dir.name}-{uuid.uuid4().hex[:8]}"
    try:
        model.save(str(tmp))
        report.figures.setdefault("training_seconds", report.seconds)
        card = {**report.to_dict(), "base_path": base_path, "base_fingerprint": model_fingerprint(report.base),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": platform.python_version(),
                "versions": _versions()}
        (tmp / CARD_JSON).write_text(json.dumps(card, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        (tmp / CARD_MD).write_text(card_markdown(card), encoding="utf-8")
        if out_dir.exists():
            if not overwrite and any(out_dir.iterdir()):
                raise AdaptError(f"{out_dir} appeared while training; the model is left in {tmp}")
            old = out_dir.parent / f".old-{out_dir.name}-{uuid.uuid4().hex[:8]}"
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except AdaptError:
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("article-qa", "sentence-transformers", "transformers", "torch", "datasets"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def card_markdown(card: dict[str, Any]) -> str:
    """The human-readable card (``ADAPTATION.md``) of an adapted model."""
    s, d = card["settings"], card["data"]
    lines = [f"# Adapted embedding model: {Path(card['out']).name}", "",
             f"Fine-tuned from `{card['base']}` by `qa adapt` ({card['mode']} mode) on {card['created']}.", "",
             "## Data", ""]
    if card["mode"] == "pairs":
        for f in d.get("files", []):
            lines.append(f"- `{f['path']}`: {f['pairs']} (question, passage) pairs (sha256 {f['sha256'][:12]}…)")
        lines.append(f"- {d.get('skipped_unanswerable', 0)} unanswerable row(s) skipped; {d['pairs']} pairs used")
    else:
        lines.append(f"- self-supervised pairs from `{d['corpus']}` ({d['articles']} articles): "
                     f"{d['inverse_cloze_pairs']} inverse-cloze, {d['title_pairs']} title → first passage")
    lines.append(f"- hard negatives: {card['hard_negatives']}")
    lines += ["", "## Settings", "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in s.items()]
    lines += ["", "## Figures", "", "| figure | value |", "|---|---|",
              f"| training time (s) | {card['seconds']} on {card['device']} |",
              f"| steps | {card['steps']} |", f"| final training loss | {card['train_loss']} |"]
    lines += [f"| {k} | {v} |" for k, v in card.get("figures", {}).items() if k != "training_seconds"]
    lines += ["", "Use it: `qa index --model " + card["out"] + " --force`, then re-check the fusion weight with "
              "`qa tune --questions YOUR_QUESTIONS.jsonl` (see docs/adaptation.md).", ""]
    return "\n".join(lines)


def record_figures(model_dir: str | os.PathLike, figures: dict[str, Any]) -> dict[str, Any]:
    """Add measured figures (e.g. recall before/after) to an adapted model's card; returns the card."""
    d = Path(model_dir)
    path = d / CARD_JSON
    if not path.is_file():
        raise AdaptError(f"{d} has no {CARD_JSON}: not a folder written by `qa adapt`")
    card = json.loads(path.read_text(encoding="utf-8"))
    card.setdefault("figures", {}).update(figures)
    tmp = path.with_name(f".{CARD_JSON}.tmp")
    tmp.write_text(json.dumps(card, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    (d / CARD_MD).write_text(card_markdown(card), encoding="utf-8")
    return card
