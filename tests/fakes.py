"""Test doubles and generators for the reliability and load tests.

``HashEmbedder`` stands in for the sentence-transformers model where a test is about plumbing
(atomic writes, kills, sessions, hostile input) rather than about meaning: it is deterministic,
needs no torch, and encodes in microseconds, so hundreds of builds, kills and questions fit in a
short test run. It carries the real model's name and dimension, so indexes built with it have the
same shape as real ones. Tests that need the real model use the session ``embedder`` fixture.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

MODEL = "multilingual-e5-small"  # the default model's name and size, so fake indexes look real
DIM = 384


def n_examples(default: int) -> int:
    """Hypothesis examples per fuzz target: ``default`` (short CI run), or ``QA_FUZZ_EXAMPLES``."""
    return int(os.environ.get("QA_FUZZ_EXAMPLES") or default)


class HashEmbedder:
    """Bag of hashed words and character trigrams, L2-normalised (same interface as Embedder)."""

    name = MODEL
    dimension = DIM
    device = "cpu"
    batch_size = 32

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(DIM, dtype=np.float32)
        words = re.findall(r"\w+", text.lower())
        feats = words + [w[i:i + 3] for w in words for i in range(max(1, len(w) - 2))]
        for f in feats:
            h = int.from_bytes(hashlib.blake2b(f.encode("utf-8", "replace"), digest_size=8).digest(), "little")
            v[h % DIM] += 1.0 if (h >> 32) & 1 else -1.0
        n = float(np.linalg.norm(v))
        if n == 0:
            v[0] = 1.0
            return v
        return v / n

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([self._vec(t) for t in texts]).astype(np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)

    def encode_passages(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        return self.encode(texts, progress=progress)


# Towns and people for generated articles (fictional; one per chat session in the load test).
TOWNS = ["Sukamaju", "Tanjungsari", "Karangjati", "Bojonegara", "Sindangraja", "Wanareja", "Cikalong",
         "Pagerwangi", "Mekarsari", "Sumberjaya", "Lembahhijau", "Purwaraja", "Tirtamulya", "Batukarang",
         "Randusari", "Gunungtua", "Kalibening", "Sidomukti", "Rawalumbu", "Pematangsiantar Baru",
         "Ujungbatu", "Serangpanjang", "Tegalwaru", "Cimanggu"]
HEADS = ["Agus Prasetyo", "Budi Santosa", "Citra Lestari", "Dedi Kurniawan", "Eka Wulandari", "Fajar Nugroho",
         "Gita Permata", "Hendra Wijaya", "Indah Puspita", "Joko Susilo", "Kartika Sari", "Lukman Hakim",
         "Maya Anggraini", "Nanda Saputra", "Oki Firmansyah", "Putri Handayani", "Rizal Fahmi", "Sari Melati",
         "Teguh Santoso", "Umar Bakri", "Vina Oktaviani", "Wahyu Hidayat", "Yusuf Maulana", "Zaenal Arifin"]


def town_article(i: int) -> tuple[str, str]:
    """(file name, text) of a generated news article about the prison of town ``i``."""
    town, head, n = TOWNS[i], HEADS[i], 100 + 7 * i
    text = (f"Lapas Kelas IIB {town} Gelar Vaksinasi Warga Binaan\n\n"
            f"{town} (ANTARA) - Lembaga Pemasyarakatan Kelas IIB {town} menggelar vaksinasi COVID-19 bagi "
            f"{n} warga binaan pada Senin. Kepala Lapas Kelas IIB {town}, {head}, mengatakan vaksinasi berjalan "
            f"lancar berkat kerja sama dengan dinas kesehatan setempat.\n\n"
            f"Menurut {head}, seluruh warga binaan menerima dosis pertama vaksin Sinovac. Dosis kedua dijadwalkan "
            f"empat minggu kemudian di aula Lapas {town}.\n")
    return f"town_{i:02d}.txt", text


def filler_article(i: int, paragraphs: int = 6) -> tuple[str, str]:
    """(file name, text) of a generated filler article with a few distinct paragraphs."""
    topics = ["harga cabai", "banjir", "jalan rusak", "pasar malam", "panen padi", "sekolah baru", "listrik padam"]
    paras = [f"Berita Nomor {i} tentang {topics[i % len(topics)]}"]
    for p in range(paragraphs):
        paras.append(f"Kota Contoh{i} - Paragraf {p} berita {i} membahas {topics[(i + p) % len(topics)]} yang "
                     f"dirasakan {i * 10 + p} warga di kecamatan {p}. Pemerintah setempat berjanji menindaklanjuti "
                     f"laporan nomor {i}-{p} pekan depan.")
    return f"filler_{i:04d}.txt", "\n\n".join(paras) + "\n"


def write_corpus(folder: Path, *, towns: int = 0, fillers: int = 0, seed: Path | None = None) -> Path:
    """A corpus folder with the seed articles (when ``seed``), town articles and filler articles."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    if seed is not None:
        for p in seed.iterdir():
            shutil.copy(p, folder / p.name)
    for i in range(towns):
        name, text = town_article(i)
        (folder / name).write_text(text, encoding="utf-8")
    for i in range(fillers):
        name, text = filler_article(i)
        (folder / name).write_text(text, encoding="utf-8")
    return folder
