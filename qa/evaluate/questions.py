"""Question sets to evaluate on: dev-set JSON Lines and BEIR folders.

Question files are JSON Lines in the dev-set format (`id`, `question`, `doc`, `docs`, `evidence`, `type`, ...),
which the CMRC 2018 trial set (`shared/eval/cmrc2018_trial/`) shares: a passage hits when it comes from the
question's document (`doc`, or one of `docs`, by file name) and contains an evidence string after NFKC + whitespace
removal. BEIR folders (corpus.jsonl, queries.jsonl, qrels/*.tsv) are read too: there a passage hits when its
document is relevant.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from qa.errors import QAError

UNANSWERABLE = "unanswerable"


class EvalInputError(QAError):
    """A question file or BEIR folder cannot be read; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Question:
    """One evaluation question. `relevant_docs` is set for BEIR questions, `evidence` for dev-set ones.

    `docs` holds the file names of the documents that answer a dev-set question (its `doc`, or its `docs` for
    multi-doc questions); empty when the file names none, and then any document may hit.
    """

    qid: str
    question: str
    type: str = "factoid"
    evidence: tuple[str, ...] = ()
    relevant_docs: frozenset[str] = frozenset()
    docs: tuple[str, ...] = ()

    @property
    def answerable(self) -> bool:
        return self.type != UNANSWERABLE and bool(self.evidence or self.relevant_docs)


def load_questions(path: Path) -> list[Question]:
    """Read a dev-set style JSON Lines file.

    Raises:
        EvalInputError: missing file, bad JSON, or a line without `question`.
    """
    if not path.is_file():
        raise EvalInputError(f"{path}: no such question file")
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise EvalInputError(f"{path}:{number}: not valid JSON ({e.msg})") from e
        if not isinstance(row, dict) or not isinstance(row.get("question"), str) or not row["question"].strip():
            raise EvalInputError(f"{path}:{number}: each line needs a non-empty \"question\" string")
        evidence = row.get("evidence") or []
        if not isinstance(evidence, list) or not all(isinstance(e, str) for e in evidence):
            raise EvalInputError(f"{path}:{number}: \"evidence\" must be a list of strings")
        docs = row.get("docs") or []
        if not isinstance(docs, list) or not all(isinstance(d, str) and d.strip() for d in docs):
            raise EvalInputError(f"{path}:{number}: \"docs\" must be a list of file names")
        doc = row.get("doc")
        if doc is not None and not (isinstance(doc, str) and doc.strip()):
            raise EvalInputError(f"{path}:{number}: \"doc\" must be a file name or null")
        named = tuple(dict.fromkeys(d.strip() for d in ([doc] if doc else []) + docs))
        qtype = row.get("type") or ("factoid" if evidence else UNANSWERABLE)
        questions.append(Question(str(row.get("id", number)), row["question"], qtype, tuple(evidence), docs=named))
    if not questions:
        raise EvalInputError(f"{path}: holds no questions")
    return questions


def load_beir(folder: Path, split: str = "test") -> tuple[list[dict], list[Question]]:
    """Read a BEIR-style folder: corpus.jsonl, queries.jsonl and qrels/<split>.tsv.

    Returns:
        The corpus rows (`_id`, `title`, `text`) and the questions whose `relevant_docs` hold corpus `_id`s.
    """
    corpus_path, queries_path = folder / "corpus.jsonl", folder / "queries.jsonl"
    qrels_path = folder / "qrels" / f"{split}.tsv"
    for path in (corpus_path, queries_path, qrels_path):
        if not path.is_file():
            raise EvalInputError(f"{folder}: not a BEIR folder ({path.relative_to(folder)} is missing)")
    try:
        corpus = [json.loads(line) for line in corpus_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        queries = {str(q["_id"]): q["text"] for q in (json.loads(line) for line in
                   queries_path.read_text(encoding="utf-8").splitlines() if line.strip())}
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise EvalInputError(f"{folder}: cannot read corpus/queries ({e})") from e
    for number, row in enumerate(corpus, 1):
        if not isinstance(row, dict) or "_id" not in row:
            raise EvalInputError(f"{corpus_path}:{number}: each corpus line needs an \"_id\"")
    relevant: dict[str, set[str]] = {}
    with qrels_path.open(encoding="utf-8") as f:
        for row in csv.reader(f, delimiter="\t"):
            if len(row) < 3 or row[0] in ("query-id", "query_id"):
                continue
            if float(row[2]) > 0:
                relevant.setdefault(row[0], set()).add(row[1])
    questions = [Question(qid, queries[qid], "beir", (), frozenset(docs))
                 for qid, docs in relevant.items() if qid in queries]
    if not questions:
        raise EvalInputError(f"{folder}: no query in {qrels_path.name} is in queries.jsonl")
    return corpus, questions
