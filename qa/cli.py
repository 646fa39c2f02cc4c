"""`qa` command line: ingest, index, ask, eval, serve, kb (knowledge bases; `--kb NAME` on the others).

Errors go to stderr as one sentence with a non-zero exit code, never a traceback. Heavy imports happen inside each
subcommand so `qa --help` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qa.errors import QAError
from qa.kb_cli import add_kb_option, add_kb_parser

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _settings(args: argparse.Namespace):
    from pydantic import ValidationError

    from qa.config import Settings

    overrides = {}
    if getattr(args, "index_dir", None):
        overrides["index_dir"] = args.index_dir
    try:
        settings = Settings(**overrides)
    except ValidationError as e:
        problems = "; ".join(f"QA_{'_'.join(map(str, err['loc'])).upper()}: {err['msg']}" for err in e.errors())
        raise QAError(f"invalid settings: {problems}") from e
    kb = getattr(args, "kb", None)
    if isinstance(kb, list):  # `qa serve --kb A --kb B`: knowledge bases to load at start
        return settings.model_copy(update={"kb_preload": kb})
    from qa.kb_cli import kb_settings

    return kb_settings(settings, kb)


def _paths(args: argparse.Namespace, settings) -> list[Path]:
    return [Path(p) for p in args.paths] if args.paths else list(settings.corpus)


def _print_json(data) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def _warn(message: str) -> None:
    print(f"qa: {message}", file=sys.stderr)


# --- ingest ---------------------------------------------------------------------------------------------------------


def cmd_ingest(args: argparse.Namespace) -> int:
    from qa.ingest.chunking import ChunkingConfig, cut_passages
    from qa.ingest.reader import load_documents
    from qa.ingest.sections import format_outline

    settings = _settings(args)
    report = load_documents(_paths(args, settings))
    for failure in report.failures:
        _warn(f"skipped {failure}")
    chunking = ChunkingConfig(settings.max_chars, settings.min_chars)
    if args.json:
        _print_json([{**d.to_dict(), "passages": len(cut_passages(d, chunking))} for d in report.documents])
        return EXIT_OK
    for doc in report.documents:
        passages = cut_passages(doc, chunking)
        meta = doc.meta
        print(f"《{doc.title}》  [{doc.doc_id}]  {doc.source}")
        print(f"  speaker: {meta.speaker or '-'}   date: {meta.date or '-'}   place: {meta.place or '-'}   "
              f"passages: {len(passages)}   characters: {len(doc.text)}")
        if args.outline:
            for line in format_outline(doc.sections):
                print(f"    {line}")
        print()
    return EXIT_OK


# --- index ----------------------------------------------------------------------------------------------------------


def cmd_index(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from qa.factory import service_from_settings
    from qa.index.locks import NotServed

    settings = _settings(args)
    service = service_from_settings(settings)
    # The keyword index is saved first (searchable at once); the passages are embedded after it, here with --wait.
    service.defer_vectors = True
    # A running server would keep serving its own copy and write over this run's version: refuse instead.
    with NotServed(settings.index_dir):
        result = service.index_paths(_paths(args, settings), add=args.add, rebuild=args.rebuild)
        for failure in result.failures:
            _warn(f"skipped {failure}")
        state = "up to date" if result.unchanged else f"built ({result.added} added, {result.removed} removed)"
        print(f"index {settings.index_dir}: {state}; {result.documents} documents, {result.passages} passages, "
              f"model {service.embedder.name}")
        vectors = service.vector_progress()
        missing = vectors.total - vectors.done
        if missing and args.wait:
            with tqdm(total=missing, desc="embedding passages", unit="passage", file=sys.stderr,
                      disable=args.quiet) as bar:
                service.complete_vectors(bar.update)
            vectors = service.vector_progress()
    if vectors.done < vectors.total:
        print(f"searchable by keywords now; vectors for {vectors.total - vectors.done} of {vectors.total} passages "
              "are still to embed: `qa serve` embeds them in the background, `qa index --wait` here "
              "(`qa ask` and `qa eval` finish them before answering)")
    return EXIT_OK


# --- ask ------------------------------------------------------------------------------------------------------------


def hit_to_dict(rank: int, hit) -> dict:
    p = hit.passage
    return {
        "rank": rank, "score": round(hit.score, 6),
        "dense_score": None if hit.dense_score is None else round(hit.dense_score, 6),
        "keyword_score": None if hit.keyword_score is None else round(hit.keyword_score, 6),
        "passage_id": p.passage_id, "doc_id": p.doc_id, "doc_title": p.doc_title,
        "section_path": list(p.section_path), "paragraph_index": p.paragraph_index,
        "char_start": p.char_start, "char_end": p.char_end, "page": p.page, "text": p.text,
        "answer_span": None if hit.answer is None else
        {"start": hit.answer.start, "end": hit.answer.end, "text": hit.answer.text},
    }


def _highlight(text: str, span, color: bool) -> str:
    flat = lambda s: " ".join(s.split())
    if span is None:
        return flat(text)
    before, middle, after = text[: span.start], text[span.start: span.end], text[span.end:]
    mark_on, mark_off = ("\x1b[1;33m", "\x1b[0m") if color else ("【", "】")
    return f"{flat(before)}{mark_on}{flat(middle)}{mark_off}{flat(after)}"


def _open_service(settings):
    from qa.factory import service_from_settings

    service = service_from_settings(settings)
    service.open(list(settings.corpus))
    vectors = service.vector_progress()
    if vectors.done < vectors.total:
        # Passages a `qa index` run or a server left without vectors: embed them before answering from them.
        _warn(f"embedding {vectors.total - vectors.done} passages that have no vector yet")
        service.complete_vectors()
    return service


def cmd_ask(args: argparse.Namespace) -> int:
    settings = _settings(args)
    service = _open_service(settings)
    answer = service.ask(args.question, top_k=args.top_k or settings.default_top_k,
                         mode=args.mode or settings.default_mode, doc_ids=args.doc or None)
    if args.json:
        _print_json({"query": answer.query, "answer": answer.text, "answerable": answer.answerable,
                     "confidence": answer.confidence,
                     "outline": [{"title": o.title, "level": o.level, "section_path": list(o.section_path),
                                  "char_start": o.heading_start, "char_end": o.heading_end,
                                  "rank": None if o.hit is None else o.hit + 1} for o in answer.outline],
                     "hits": [hit_to_dict(i, h) for i, h in enumerate(answer.hits, 1)]})
        return EXIT_OK
    color = sys.stdout.isatty()
    print(f"答：{answer.text}\n")
    for i, hit in enumerate(answer.hits, 1):
        p = hit.passage
        where = " > ".join(p.section_path) or "（正文开头）"
        page = f" 第{p.page}页" if p.page else ""
        print(f"[{i}] 《{p.doc_title}》 {where}{page} （第{p.paragraph_index + 1}段，字符 {p.char_start}-{p.char_end}）"
              f" score={hit.score:.3f}")
        print(f"    {_highlight(p.text, hit.answer, color)}\n")
    return EXIT_OK


# --- eval -----------------------------------------------------------------------------------------------------------


def cmd_eval(args: argparse.Namespace) -> int:
    from qa.evaluate.questions import EvalInputError, load_beir, load_questions
    from qa.evaluate.scratch import check_corpus, default_cache_dir, scratch_index_dir

    # No question-vector cache: each mode asks every question again, and its latency must be the real work's.
    settings = _settings(args).model_copy(update={"query_cache_size": 0})
    source = Path(args.questions)
    cache_dir = None if args.no_embedding_cache else Path(args.embedding_cache or default_cache_dir())
    if source.is_dir():
        if args.corpus:
            raise EvalInputError(f"{source} is a BEIR folder, which holds its own corpus; drop --corpus")
        corpus, questions = load_beir(source, args.split)
        with scratch_index_dir(cache_dir, _warn) as index_dir:
            return _eval_beir(args, _scratch_settings(settings, index_dir), source, corpus, questions)
    questions = load_questions(source)
    if args.corpus:
        corpus_dir = Path(args.corpus)
        check_corpus(corpus_dir)
        with scratch_index_dir(cache_dir, _warn) as index_dir:
            scratch = _scratch_settings(settings, index_dir)
            return _eval_questions(args, scratch, _build_eval_index(scratch, corpus_dir, args.quiet), source,
                                   questions)
    return _eval_questions(args, settings, _open_service(settings), source, questions)


def _scratch_settings(settings, index_dir: Path):
    # The throw-away index is always the embedded one: never rebuild a configured Milvus collection for an eval run.
    return settings.model_copy(update={"index_dir": index_dir, "backend": "faiss"})


def _build_eval_index(settings, corpus_dir: Path, quiet: bool):
    from tqdm import tqdm

    from qa.factory import service_from_settings

    service = service_from_settings(settings)
    with tqdm(desc=f"embedding {corpus_dir}", unit="passage", file=sys.stderr, disable=quiet) as bar:
        result = service.index_paths([corpus_dir], rebuild=True, progress=bar.update)
    for failure in result.failures:
        _warn(f"skipped {failure}")
    return service


def _eval_questions(args: argparse.Namespace, settings, service, source: Path, questions) -> int:
    from qa.evaluate.metrics import same_document

    sources = {doc.doc_id: doc.source for doc in service.documents()}
    named = sorted({d for q in questions for d in q.docs})
    unknown = [d for d in named if not any(same_document(d, s) for s in sources.values())]
    if unknown:
        _warn(f"{len(unknown)} of {len(named)} documents named by the questions are not in the index "
              f"(e.g. {unknown[0]}); their questions cannot hit")
    return _run_eval(args, settings, service, source, questions, sources.get)


def _eval_beir(args: argparse.Namespace, settings, source: Path, corpus: list[dict], questions) -> int:
    from qa.factory import service_from_settings
    from qa.ingest.document import document_from_text

    service = service_from_settings(settings)
    docs, beir_id = [], {}
    for row in corpus:
        text = "\n".join(part for part in (row.get("title"), row.get("text")) if part)
        if not text.strip():
            continue
        doc = document_from_text(text, source=str(row["_id"]), title=row.get("title") or None)
        beir_id.setdefault(doc.doc_id, str(row["_id"]))
        docs.append(doc)
    service.index_documents(docs)
    return _run_eval(args, settings, service, source, questions, beir_id.get)


def _run_eval(args: argparse.Namespace, settings, service, source: Path, questions, doc_id_of) -> int:
    from qa.evaluate.report import write_report
    from qa.evaluate.run import evaluate

    modes = ["hybrid", "dense", "bm25"] if args.mode == "all" else [args.mode or settings.default_mode]
    reports = [evaluate(lambda q, mode=mode: service.ask(q, top_k=args.top_k, mode=mode), questions, mode, doc_id_of)
               for mode in modes]
    if args.report:
        path = write_report(reports, Path(args.report), str(source))
        _warn(f"report written to {path}")
    if args.json:
        if len(reports) == 1:
            _print_json(reports[0].summary)
        else:
            _print_json({r.mode: r.summary for r in reports})
        return EXIT_OK
    print(_format_eval_table(reports))
    return EXIT_OK


def _format_eval_table(reports) -> str:
    """The figures of `qa eval` as a text table: one `all` row per mode, then one row per question type."""

    def share(value) -> str:
        return "-" if value is None else f"{value:.3f}"

    header = ("mode", "type", "n", "hit@1", "hit@3", "hit@5", "mrr@10", "answer_contains_evidence",
              "wrongly_unanswerable", "unanswerable_flagged", "p50_ms")
    rows = []
    for r in reports:
        s = r.summary
        rows.append((r.mode, "all", str(s["n"]), share(s["hit@1"]), share(s["hit@3"]), share(s["hit@5"]),
                     share(s["mrr@10"]), share(s["answer_contains_evidence"]), share(s["wrongly_unanswerable"]),
                     share(s["unanswerable"]["flagged"]) if s["unanswerable"]["n"] else "-",
                     f"{s['latency_ms']['p50']:.1f}"))
        for qtype, t in s["by_type"].items():
            rows.append((r.mode, qtype, str(t["n"]), share(t["hit@1"]), share(t["hit@3"]), share(t["hit@5"]),
                         share(t["mrr@10"]), share(t["answer_contains_evidence"]), share(t["wrongly_unanswerable"]),
                         "-", "-"))
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths, strict=True))).rstrip() for row in (header, *rows))


# --- serve ----------------------------------------------------------------------------------------------------------


def cmd_kb(args: argparse.Namespace) -> int:
    from qa.kb_cli import cmd_kb as run

    return run(args, _settings(args))


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    updates = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    from api.main import serve  # the web layer wraps the core; only this command reaches up to it

    serve(settings.model_copy(update=updates), workers=args.workers)
    return EXIT_OK


# --- main -----------------------------------------------------------------------------------------------------------


def _workers(value: str) -> int:
    try:
        workers = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--workers takes a whole number from 1 to 64, got {value!r}") from None
    if not 1 <= workers <= 64:
        raise argparse.ArgumentTypeError(f"--workers takes a whole number from 1 to 64, got {workers}")
    return workers


def _top_k(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {value!r}") from None
    if not 1 <= number <= 1000:
        raise argparse.ArgumentTypeError(f"must be in [1, 1000], got {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qa", description="Chinese document question answering with exact citations.")
    parser.add_argument("--index-dir", help="index folder (default: QA_INDEX_DIR or .qa_index)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="read documents and print their metadata and outline")
    p.add_argument("paths", nargs="*", help="files or folders (default: the configured corpus)")
    p.add_argument("--outline", action="store_true", help="print each document's section tree")
    p.add_argument("--json", action="store_true", help="print documents as JSON")
    add_kb_option(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("index", help="build or update the search index")
    p.add_argument("paths", nargs="*", help="files or folders (default: the configured corpus)")
    p.add_argument("--add", action="store_true", help="add to the documents already indexed instead of replacing them")
    p.add_argument("--rebuild", action="store_true", help="ignore the saved index and build from scratch")
    p.add_argument("--wait", action="store_true",
                   help="embed the new passages before returning, with a progress bar (default: return once they "
                        "are searchable by keywords; `qa serve` embeds them in the background)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_kb_option(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", help="answer a question from the indexed documents")
    p.add_argument("question")
    p.add_argument("--top-k", type=_top_k, help="how many passages (default 5)")
    p.add_argument("--mode", choices=["hybrid", "dense", "bm25"], help="retrieval mode (default hybrid)")
    p.add_argument("--doc", action="append", help="search only this document id (repeatable)")
    p.add_argument("--json", action="store_true", help="print the answer and passages as JSON")
    add_kb_option(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("eval", help="score retrieval and answers on a question file (dev-set JSONL) or a BEIR folder")
    p.add_argument("questions", help="questions .jsonl, or a BEIR folder with corpus.jsonl, queries.jsonl, qrels/")
    p.add_argument("--corpus", metavar="DIR", help="evaluate on a temporary index of the documents in DIR (removed "
                   "afterwards) instead of the index in --index-dir")
    p.add_argument("--embedding-cache", metavar="DIR", help="where --corpus and BEIR runs keep embeddings between "
                   "runs (embeddings.sqlite; default $XDG_CACHE_HOME/zhqa or ~/.cache/zhqa; an index folder works too)")
    p.add_argument("--no-embedding-cache", action="store_true", help="embed everything afresh, keep nothing")
    p.add_argument("--top-k", type=_top_k, default=10, help="passages retrieved per question (default 10)")
    p.add_argument("--mode", choices=["hybrid", "dense", "bm25", "all"], help="retrieval mode (default hybrid)")
    p.add_argument("--split", default="test", help="BEIR qrels split (default test)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object with the metrics")
    p.add_argument("--report", metavar="DIR", help="write report.md and hit_at_k.png into DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar while --corpus is embedded")
    add_kb_option(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("serve", help="run the HTTP API and chat page")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=_workers, default=1,
                   help="serving processes sharing the index folder (default 1; writes are serialized by a lock)")
    add_kb_option(p, many=True)
    p.set_defaults(func=cmd_serve)

    add_kb_parser(sub, cmd_kb)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `qa` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except QAError as e:
        _warn(str(e))
        return EXIT_FAIL
    except (ValueError, OSError) as e:  # bad settings value, unreadable folder, disk full: one sentence, no traceback
        _warn(f"{type(e).__name__}: {e}")
        return EXIT_FAIL
    except KeyboardInterrupt:
        _warn("interrupted; the saved index is unchanged unless a new version was completed")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
