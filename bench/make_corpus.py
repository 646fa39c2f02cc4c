"""A large synthetic Chinese corpus for benchmarks, recombined from the sample corpus (qa/resources/corpus/*.txt).

Usage:
    python bench/make_corpus.py --size 100000 [--seed 0] [--out FILE.jsonl | --txt-dir DIR]

Each generated document takes one sample document as its main source and draws runs of consecutive sentences
from it, mixed with sentences from the other sample documents; place and person names are replaced by
generated ones (one consistent mapping per document), numbers are varied (same number of digits; years move
with the document's year), some common words are swapped for synonyms, inner clauses are sometimes dropped, and
some passages open with a generated meeting sentence (date, place, person). Passages are 150-300 characters, like the service's own chunks.

Deterministic: document i depends only on (seed, i), so for one seed the 10k corpus is a prefix of the 100k
corpus, which is a prefix of the 1M one (except that the last document is cut at the requested size).
JSONL rows are ``{"id": "p0000000", "doc_id": "d000000", "text": ...}``; ``--txt-dir`` writes one .txt per
document instead (title line, then one passage per paragraph), readable by ``qa index``.
Speed: about 1M passages in 2-3 minutes on one core; the 1M JSONL is about 0.9 GB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
from collections.abc import Iterator
from pathlib import Path

SAMPLE_CORPUS = Path(__file__).resolve().parents[1] / "qa" / "resources" / "corpus"
DEFAULT_DIR = Path.home() / ".cache" / "zhqa-bench"

# Names that occur in the sample corpus, replaced per generated document.
# Place-name stems: the suffix (区, 市, ...) that follows in the text is kept.
PLACES = ["古塔", "锦州", "大连", "魏都", "渌水"]
PERSONS = ["宋 晓 东", "张书杰", "李朝锋", "魏少峰", "纪保民", "王国生", "秀海", "尤源", "占禄"]
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国志红海林波文斌宇浩凯鹏飞俊峰晨阳雪梅春兰"
_PLACE_CHARS = "东西南北新安平和宁兴华昌盛丰阳山河湖江海川岭石桥城原泉清长永嘉宝金玉龙凤云松柏桃李杨柳青"
# Wording swaps chosen once per document (either direction), so documents differ beyond names and numbers.
_SYNONYMS = [("全区", "全县"), ("加强", "强化"), ("推进", "推动"), ("落实", "贯彻"), ("确保", "保证"), ("重点", "关键"),
             ("提升", "提高"), ("工作", "任务"), ("坚持", "始终坚持"), ("扎实", "切实"), ("全面", "全方位"),
             ("企业", "市场主体"), ("群众", "老百姓"), ("项目", "工程"), ("部门", "单位"), ("进一步", "更加")]
_MEETINGS = ["常委会", "工作会议", "调度会", "推进会", "专题会议", "现场会", "座谈会", "动员大会"]
_CLAUSE = re.compile(r"(?<=[，,])")
_SENTENCE = re.compile(r"[^。！？；!?;]+[。！？；!?;]?")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SKIP_LINE = re.compile(r"^(#|当前位置|【信息来源|同志们|上一篇|下一篇)")


def load_sentences(corpus: Path = SAMPLE_CORPUS) -> list[list[str]]:
    """Sentences of each sample document, in file-name order (headings, boilerplate and scraps dropped)."""
    docs = []
    for path in sorted(corpus.glob("*.txt")):
        sentences = []
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip().replace("**", "")
            if len(line) < 12 or _SKIP_LINE.match(line):
                continue
            sentences += [s.strip() for s in _SENTENCE.findall(line) if len(s.strip()) >= 8]
        if sentences:
            docs.append(sentences)
    if not docs:
        raise SystemExit(f"no usable .txt documents in {corpus}")
    return docs


def _person(rng: random.Random) -> str:
    return rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2))))


def _place(rng: random.Random) -> str:
    return rng.choice(_PLACE_CHARS) + rng.choice(_PLACE_CHARS)


class _Varier:
    """One document's consistent replacements: names, places, year, and fresh numbers."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.year = rng.randint(2012, 2025)
        self.names: dict[str, str] = {}
        for person in PERSONS:
            name = _person(rng)
            # Two-character given names addressed as "XX同志" stay two characters.
            self.names[person] = name[1:] if len(person) == 2 else name
        for place in PLACES:
            self.names[place] = _place(rng)
        for a, b in _SYNONYMS:
            if rng.random() < 0.5:
                self.names[a] = b
            elif rng.random() < 0.5:
                self.names[b] = a
        self._names = re.compile("|".join(sorted(map(re.escape, self.names), key=len, reverse=True)))

    def _number(self, match: re.Match) -> str:
        text = match.group(0)
        if "." in text:
            whole, frac = text.split(".")
            return f"{self.rng.randint(0, 10 ** len(whole) - 1)}.{self.rng.randint(0, 10 ** len(frac) - 1):0{len(frac)}d}"
        value = int(text)
        if len(text) == 4 and 1990 <= value <= 2030:
            return str(self.year + value - 2020)
        if len(text) == 1:
            return str(self.rng.randint(1, 9))
        return str(self.rng.randint(10 ** (len(text) - 1), 10 ** len(text) - 1))

    def lead(self) -> str:
        """A fresh opening sentence: date, place, meeting, person."""
        rng = self.rng
        place = self.names[rng.choice(PLACES)] + rng.choice("区县市")
        return (f"{rng.randint(1, 12)}月{rng.randint(1, 28)}日，{place}召开{rng.choice(_MEETINGS)}，"
                f"{_person(rng)}主持会议，{rng.randint(2, 60)}个单位参加。")

    def __call__(self, sentence: str) -> str:
        clauses = _CLAUSE.split(sentence)
        if len(clauses) >= 3 and self.rng.random() < 0.3:  # drop one inner clause
            del clauses[self.rng.randrange(1, len(clauses) - 1)]
            sentence = "".join(clauses)
        sentence = self._names.sub(lambda m: self.names[m.group(0)], sentence)
        return _NUMBER.sub(self._number, sentence)


def generate_document(sources: list[list[str]], seed: int, doc_index: int) -> tuple[str, list[str]]:
    """One document: (title, passages). Depends only on (sources, seed, doc_index)."""
    digest = hashlib.sha256(f"{seed}:{doc_index}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    vary = _Varier(rng)
    main = rng.randrange(len(sources))
    passages = []
    for _ in range(rng.randint(5, 40)):
        target = rng.randint(150, 300)
        src = sources[main]
        pos = rng.randrange(len(src))
        parts: list[str] = [vary.lead()] if rng.random() < 0.4 else []
        length = len(parts[0]) if parts else 0
        while length < target:
            if rng.random() < 0.25:  # a sentence from elsewhere, then continue from there
                src = sources[rng.randrange(len(sources))]
                pos = rng.randrange(len(src))
            sentence = vary(src[pos % len(src)])
            pos += 1
            if length + len(sentence) > 300:
                if parts:
                    break
                sentence = sentence[:300]
            parts.append(sentence)
            length += len(sentence)
        passages.append("".join(parts))
    title = f"{vary.names['古塔']}区{vary.year}年{rng.choice(['工作会议', '调度会议', '领导干部会议', '扩大会议'])}讲话"
    return title, passages


def generate(size: int, seed: int = 0, sources: list[list[str]] | None = None) -> Iterator[dict]:
    """Yields ``size`` passage rows ``{"id", "doc_id", "text"}`` in order."""
    sources = sources or load_sentences()
    count, doc_index = 0, 0
    while count < size:
        _, passages = generate_document(sources, seed, doc_index)
        for text in passages[: size - count]:
            yield {"id": f"p{count:07d}", "doc_id": f"d{doc_index:06d}", "text": text}
            count += 1
        doc_index += 1


def default_path(size: int, seed: int) -> Path:
    return DEFAULT_DIR / f"corpus-{size}-seed{seed}.jsonl"


def write_jsonl(path: Path, size: int, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in generate(size, seed):
            f.write(json.dumps(row, ensure_ascii=False))
            f.write("\n")
    tmp.replace(path)
    return path


def write_txt(folder: Path, size: int, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    sources = load_sentences()
    count, doc_index = 0, 0
    while count < size:
        title, passages = generate_document(sources, seed, doc_index)
        passages = passages[: size - count]
        (folder / f"d{doc_index:06d}.txt").write_text(title + "\n\n" + "\n\n".join(passages) + "\n", encoding="utf-8")
        count += len(passages)
        doc_index += 1
    return folder


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if limit is not None and len(rows) >= limit:
                break
            rows.append(json.loads(line))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, required=True, help="passages, e.g. 10000, 100000, 1000000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help=f"JSONL file (default {DEFAULT_DIR}/corpus-SIZE-seedSEED.jsonl)")
    parser.add_argument("--txt-dir", type=Path, help="write one .txt per document into this folder instead")
    args = parser.parse_args()
    if not 1 <= args.size <= 100_000_000:
        parser.error(f"--size must be in [1, 100000000], got {args.size}")
    if args.txt_dir:
        print(write_txt(args.txt_dir, args.size, args.seed))
    else:
        print(write_jsonl(args.out or default_path(args.size, args.seed), args.size, args.seed))


if __name__ == "__main__":
    sys.exit(main())
