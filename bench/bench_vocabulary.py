"""Cost of learning a segment's vocabulary against building its BM25 postings, on the same documents, in CPU time.

Usage: python bench/bench_vocabulary.py [--passages 32768] [--repeat 3]
Reads the first passages of the cached synthetic corpus (bench/make_corpus.py; written if missing), groups them into
their documents, and times `BM25Index.segment_for` (tokenizing + postings: the keyword build of one segment) and
`learn_segment` alternately. CPU time (`time.process_time`) rather than wall time: on a shared machine the wall time
of the same build varied 2x between runs, while both steps run on one core.
"""

from __future__ import annotations

import argparse
import statistics
import time

from make_corpus import default_path, read_jsonl, write_jsonl

from qa.index.bm25 import BM25Index
from qa.index.segments import passage_index_text
from qa.index.vocabulary import learn_segment
from qa.ingest.chunking import cut_passages
from qa.types import Document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=32_768, help="one full segment by default")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    corpus = default_path(100_000, 0)
    if not corpus.is_file():
        write_jsonl(corpus, 100_000, 0)
    by_doc: dict[str, list[str]] = {}
    for row in read_jsonl(corpus, args.passages):
        by_doc.setdefault(row["doc_id"], []).append(row["text"])
    docs = [Document(doc_id=d, title=d, text="\n\n".join(t), source=d) for d, t in by_doc.items()]
    texts = [passage_index_text(p, d) for d in docs for p in cut_passages(d)]
    postings, learning = [], []
    for _ in range(args.repeat):
        started = time.process_time()
        BM25Index.segment_for(texts, "char123")
        postings.append(time.process_time() - started)
        started = time.process_time()
        vocabulary = learn_segment([d.text for d in docs], range(len(docs)))
        learning.append(time.process_time() - started)
    print(f"{len(texts)} passages, {sum(map(len, texts))} characters, {len(docs)} documents; "
          f"{len(vocabulary)} terms learned\n")
    print(f"| step | CPU time (median of {args.repeat}) |\n|---|---|")
    print(f"| BM25 postings (tokenize + count) | {statistics.median(postings):.2f} s |")
    print(f"| vocabulary learning | {statistics.median(learning):.2f} s |")
    print(f"| learning / postings | {statistics.median(learning) / statistics.median(postings):.1%} |")


if __name__ == "__main__":
    main()
