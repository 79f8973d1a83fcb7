"""English renderings of Indonesian training questions, for teaching the span reader English questions.

The labelled questions in reach are Indonesian; users also ask in English over Indonesian articles, and
the reader, trained on Indonesian questions only, reads an English one with less confidence though it
often finds the answer (gold passages of 40 TyDi valid questions written in English by hand: span
probability 0.26 against 0.55 for the Indonesian wording, "no answer" 0.23 against 0.05, token F1 0.67
against 0.74). No translation model installs without a download, so each question is rendered word by
word: question words and common question vocabulary from a hand-written table, other words through the
packaged English -> Indonesian lexicon read backwards (its dictionary pairs, and its encoder pairs from
CSLS 0.07), affixed forms by their root; names, numbers and unknown words stay as written (English
questions about Indonesian articles are code-switched too). "Siapa pendiri Cape Town?" -> "Who founder
Cape Town?". The reader reads such renderings as it reads hand-written English (on those 40: span
probability 0.22, "no answer" 0.35, F1 0.70), so they are a fair stand-in to train on; what training on
them did is in ``qa/answer/models/READER.md`` ("English questions").

    python -m qa.adaptation.crosslingual --train ../shared/data/qa_{tydiqa_id,facqa,idkmrc}_train.jsonl \\
        --english 5000 --indonesian 5000 --out /tmp/reader_mix.jsonl

writes a shuffled mix of ``--english`` rendered and ``--indonesian`` other questions as written (the
same rows' contexts and answers), for ``qa train-reader --train``.
"""
from __future__ import annotations

import argparse
import random
import re
from pathlib import Path
from typing import Optional, Sequence

from ..lexicon import PATH as LEXICON_PATH
from ..linear import read_json
from ..stores.embedded_index.files import write_jsonl

#: question words, function words and the commonest question vocabulary the lexicon misses
#: (the most frequent untranslated words of the training questions, translated by hand)
TABLE: dict[str, str] = {
    "siapa": "who", "siapakah": "who", "berapa": "how many", "berapakah": "how many", "kapan": "when",
    "kapankah": "when", "dimana": "where", "dimanakah": "where", "manakah": "which", "mana": "which",
    "darimana": "where from", "darimanakah": "where from", "apa": "what", "apakah": "what", "mengapa": "why",
    "kenapa": "why", "bagaimana": "how", "bagaimanakah": "how", "lamakah": "how long", "yang": "that",
    "dari": "of", "di": "in", "ke": "to", "pada": "on", "dan": "and", "untuk": "for", "dengan": "with",
    "oleh": "by", "adalah": "is", "ialah": "is", "merupakan": "is", "tahun": "year", "nama": "name",
    "ini": "this", "itu": "that", "tersebut": "the", "dalam": "in", "sebagai": "as", "tidak": "not",
    "tak": "not", "bukan": "not", "telah": "has", "sudah": "already", "akan": "will", "saat": "when",
    "ketika": "when", "sejak": "since", "hingga": "until", "sampai": "until", "atau": "or", "juga": "also",
    "kepada": "to", "bagi": "for", "tentang": "about", "mengenai": "about", "para": "the", "sang": "the",
    "luas": "area", "ibukota": "capital", "menjadi": "became", "didirikan": "founded", "pendiri": "founder",
    "mendirikan": "founded", "digunakan": "used", "menggunakan": "uses", "ditemukan": "discovered",
    "penemu": "inventor", "ada": "there are", "terdapat": "there is", "terjadi": "happened",
    "terjadinya": "occurrence", "dirilis": "released", "lama": "long", "penyebab": "cause",
    "diciptakan": "created", "pengertian": "meaning", "makna": "meaning", "dilahirkan": "born",
    "paling": "most", "dilakukan": "done", "melakukan": "did", "periodik": "periodic", "penduduk": "population",
    "tokoh": "figure", "dapat": "can", "diadakan": "held", "diselenggarakan": "held", "pemimpin": "leader",
    "umur": "age", "menjabat": "served", "berkuasa": "ruled", "tanggal": "date", "karya": "work",
    "banyak": "many", "terhadap": "against", "lokasi": "location", "disebut": "called", "sebutan": "nickname",
    "badan": "agency", "bandara": "airport", "partai": "party", "satu": "one", "dua": "two", "tiga": "three",
    "pertama": "first", "sebelum": "before", "setelah": "after", "dibubarkan": "dissolved", "asli": "original",
    "wiracarita": "epic", "berlangsung": "took place", "bahwa": "that", "memiliki": "has", "mempunyai": "has",
    "dimiliki": "owned", "warga": "residents", "penghargaan": "award", "pernah": "ever",
    "kepanjangan": "long form", "api": "fire", "diangkat": "appointed", "ketua": "chairman", "tim": "team",
    "vokalis": "vocalist", "negara": "country", "kecamatan": "district", "desa": "village",
    "mengembangkan": "developed", "dikembangkan": "developed", "zaman": "era", "runtuh": "collapsed",
    "kekaisaran": "empire", "air": "water", "berasal": "come from", "pemilu": "election", "berada": "located",
    "berlokasi": "located", "candi": "temple", "dihancurkan": "destroyed", "bidang": "field",
    "unsur": "element", "dimaksudkan": "meant", "ayah": "father", "jabatan": "position",
    "penerbangan": "flight", "huruf": "letter", "suhu": "temperature", "lahan": "land", "lain": "other",
    "pemeran": "actor", "memerankan": "played", "dimainkan": "played", "cara": "way", "peristiwa": "event",
    "ajang": "event", "acara": "event", "meraih": "won", "memenangi": "won", "peraih": "winner",
    "militer": "military", "terlibat": "involved", "adat": "custom", "sekuel": "sequel",
    "sutradara": "director", "direktur": "director", "mengatakan": "said", "menyatakan": "stated",
    "dinyatakan": "declared", "lalu": "then", "tertua": "oldest", "terlama": "longest", "gelar": "title",
    "selama": "during", "diresmikan": "inaugurated", "wisata": "tourism", "bilangan": "number",
    "pasukan": "troops", "karena": "because", "diperingati": "commemorated", "manfaat": "benefit",
    "tembok": "wall", "tergabung": "joined", "antara": "between", "mantan": "former", "sastra": "literature",
    "dana": "funds", "memperoleh": "obtained", "mendapat": "got", "melalui": "through",
    "diperkenalkan": "introduced", "memperkenalkan": "introduced", "peran": "role", "pembalap": "racer",
    "dikeluarkan": "issued", "dipimpin": "led", "memimpin": "led", "dibebaskan": "freed", "isi": "content",
    "kandungan": "content", "zat": "substance", "maskapai": "airline", "perusahaan": "company",
    "selain": "besides", "sekitar": "about", "tayang": "aired", "ditayangkan": "aired", "wakil": "deputy",
    "rata-rata": "average", "aliran": "stream", "daya": "power", "umat": "followers", "ciri": "feature",
    "diluncurkan": "launched", "sering": "often", "penggagas": "initiator", "harus": "must",
    "awal": "beginning", "departemen": "department", "menara": "tower", "produser": "producer",
    "kebangsaan": "nationality", "kisah": "story", "keluarga": "family", "renang": "swimming",
    "menjajah": "colonized", "diterbitkan": "published", "kesenian": "arts", "wafat": "died",
    "meninggal": "died", "lebih": "more", "peninggalan": "relic", "menghasilkan": "produced",
    "dihasilkan": "produced", "kebutuhan": "needs", "setiap": "every", "ditolak": "rejected",
    "tersebar": "spread", "perbedaan": "difference", "masih": "still", "peneliti": "researcher",
    "jalan": "road", "rakyat": "people", "jumlah": "number", "kota": "city", "provinsi": "province",
    "kabupaten": "regency", "presiden": "president", "gubernur": "governor", "bupati": "regent",
    "walikota": "mayor", "menteri": "minister", "kepala": "head", "pegawai": "employees", "jenis": "type",
    "dunia": "world", "tinggal": "live", "letak": "location", "maksud": "meaning", "dimaksud": "meant",
    "kali": "times", "kalikah": "times", "serta": "and", "pertandingan": "match", "melawan": "against",
}
PREFIXES = ("meng", "meny", "mem", "men", "me", "ber", "di", "ter", "pe", "ke", "se")
SUFFIXES = ("nya", "kan", "an", "i", "lah", "kah")
MIN_ENCODER_SCORE = 0.07  # the lexicon's encoder pairs from this CSLS: about 22 in 30 right (LEXICON.md)


def backwards(path: Path = LEXICON_PATH, min_score: float = MIN_ENCODER_SCORE) -> dict[str, list[str]]:
    """Indonesian word -> the English words the lexicon maps to it (dictionary pairs, and encoder
    pairs from ``min_score``), shortest first."""
    out: dict[str, list[str]] = {}
    for en, (word, _cos, csls, how, *_) in read_json(path, "lexicon")["pairs"].items():
        if how == "dictionary" or csls >= min_score:
            out.setdefault(word, []).append(en)
    return {k: sorted(v, key=lambda w: (len(w), w)) for k, v in out.items()}


def _english(low: str, words: dict[str, list[str]]) -> Optional[list[str]]:
    if low in words:
        return words[low]
    for s in SUFFIXES:
        if low.endswith(s) and len(low) - len(s) >= 4 and low[:-len(s)] in words:
            return words[low[:-len(s)]]
    for p in PREFIXES:
        if low.startswith(p) and len(low) - len(p) >= 4 and low[len(p):] in words:
            return words[low[len(p):]]
    return None


def render(question: str, words: dict[str, list[str]], rng: Optional[random.Random] = None) -> str:
    """``question`` rendered in English word by word (names, numbers and unknown words as written);
    ``rng`` picks among the three shortest English words for a word (the shortest without one)."""
    question = re.sub(r"\b([Dd]i|[Dd]ari) mana(kah)?\b", lambda m: m.group(1) + "mana" + (m.group(2) or ""), question)
    out: list[str] = []
    for i, tok in enumerate(re.findall(r"[\w.'-]+|[^\w\s]", question)):
        low = tok.lower()
        if not re.match(r"\w", tok):
            out.append(tok)
        elif (i > 0 and tok[:1].isupper()) or any(ch.isdigit() for ch in tok):
            out.append(tok)  # a name, an acronym or a number
        elif low in TABLE:
            out.append(TABLE[low])
        else:
            got = _english(low, words)
            if got and (not tok[:1].isupper() or low in words):  # a capital here opens the question
                out.append(rng.choice(got[:3]) if rng else got[0])
            else:
                out.append(tok)
    text = re.sub(r"\s+([?.,!:;])", r"\1", " ".join(out))
    return text[:1].upper() + text[1:]


def mix(files: Sequence[str | Path], english: int, indonesian: int, *, seed: int = 7) -> list[dict]:
    """``english`` rows of ``files`` with their questions rendered (id + ``-en``) and ``indonesian``
    other rows as written, shuffled; ValueError when the files hold fewer rows than asked for."""
    from .reader import read_rows

    rows = read_rows(files)
    if english < 0 or indonesian < 0 or english + indonesian > len(rows):
        raise ValueError(f"--english {english} + --indonesian {indonesian} must be at least 0 and at most "
                         f"the {len(rows)} rows of the files")
    rng = random.Random(seed)
    rng.shuffle(rows)
    words = backwards()
    out = [dict(r, question=render(r["question"], words, rng), id=f"{r.get('id', n)}-en")
           for n, r in enumerate(rows[:english])]
    out += rows[english:english + indonesian]
    rng.shuffle(out)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qa.adaptation.crosslingual", description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", nargs="+", required=True, metavar="FILE", help="question files (qa_*.jsonl form)")
    ap.add_argument("--english", type=int, default=5000, help="rows rendered in English (default: 5000)")
    ap.add_argument("--indonesian", type=int, default=5000, help="other rows kept as written (default: 5000)")
    ap.add_argument("--seed", type=int, default=7, help="sampling seed (default: 7)")
    ap.add_argument("--out", required=True, help="JSONL to write, for qa train-reader --train")
    args = ap.parse_args(argv)
    try:
        rows = mix(args.train, args.english, args.indonesian, seed=args.seed)
    except ValueError as exc:
        ap.error(str(exc))
    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    write_jsonl(tmp, rows)
    tmp.replace(out)
    print(f"wrote {len(rows)} rows ({args.english} in English) to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
