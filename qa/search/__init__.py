"""Ranking and answering: question -> ranked passages -> answer sentence, or "不知道".

- `retriever`: BM25 and dense search over any index with the `SearchIndex` interface, fused by `fusion`.
- `answer`: the answering sentence of each hit and whether the documents answer at all.
- `conversation`: elliptical follow-up questions rewritten from the earlier turns.
"""
