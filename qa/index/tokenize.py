"""Tokenizers for Chinese keyword retrieval, plus query analysis with jieba part-of-speech tags.

Every tokenizer is a callable ``str -> list[str]`` that normalises its input with
:func:`qa.text.normalize` first (normalising twice is harmless, it is idempotent), so callers may pass
raw or normalised text alike.

jieba is imported lazily and its dictionary is loaded once per process, on first use, by :func:`get_jieba`;
importing this module stays cheap. That dictionary is never changed: the words of an index's own documents
(:class:`qa.index.vocabulary.Vocabulary`, learned when it is built) are passed to query analysis explicitly, so
indexes served by one process never see each other's words.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol

from qa.text import normalize

if TYPE_CHECKING:  # pragma: no cover - typing only
    import jieba
    import jieba.posseg

__all__ = [
    "ENTITY_FLAGS",
    "QUESTION_WORDS",
    "STOPWORDS",
    "TOKENIZER_NAMES",
    "CharNgramTokenizer",
    "JiebaTokenizer",
    "LearnedWords",
    "MixedTokenizer",
    "Term",
    "Tokenizer",
    "content_terms",
    "create_tokenizer",
    "get_jieba",
    "named_entities",
    "pos_tokenizer",
]

Tokenizer = Callable[[str], list[str]]

# Words that say what kind of answer is wanted, not what it is about. They occur in questions, almost
# never in the (speech) passages, so as query tokens they only add noise. "哪篇/几篇" refer to documents.
QUESTION_WORDS: frozenset[str] = frozenset(
    {
        "多少", "什么", "哪些", "如何", "怎么", "怎样", "怎么样", "是否", "哪个", "哪里", "哪儿",
        "哪天", "哪年", "哪月", "哪位", "哪项", "哪家", "哪种", "哪几", "哪两", "哪三", "哪篇",
        "几篇", "哪几个", "哪几项", "为什么", "为何", "何时", "是不是", "有没有", "能否", "请问",
        "什么时候", "怎么办",
    }
)  # fmt: skip

# Single characters too frequent to discriminate: particles, copula, common prepositions/pronouns.
# Only the unigram itself is dropped; bigrams containing one (在建, 和谐) still carry meaning.
_STOP_CHARS = "的了吗呢吧啊呀么哪谁是在和与及或等也都就对把被让从向这那之其"

# Pronoun/conjunction words jieba emits whole (the char tokenizer drops the same bigrams).
_STOP_WORDS_EXTRA = ("我们", "你们", "他们", "一个", "这个", "那个", "以及", "还是", "或者")


def _bigrams(word: str) -> Iterable[str]:
    return (word[i : i + 2] for i in range(len(word) - 1))


# One set serves both tokenizer families: the char tokenizer sees the bigrams of question words (为什么
# -> 为什, 什么), jieba sees the words themselves.
STOPWORDS: frozenset[str] = frozenset(
    set(_STOP_CHARS)
    | QUESTION_WORDS
    | {bg for w in QUESTION_WORDS for bg in _bigrams(w)}
    | set(_STOP_WORDS_EXTRA)
)

# jieba POS flags for proper names: place, person, organisation, other proper noun (jieba adds suffixes
# such as "nrt"/"nrfg", hence prefix matching).
ENTITY_FLAGS: tuple[str, ...] = ("ns", "nr", "nt", "nz")

# POS flags that never carry query content: particles (u*), modal (y), interjection (e), onomatopoeia
# (o), conjunction (c), preposition (p), pronoun (r: 什么/哪些), non-word/punctuation (x, w).
_FUNCTION_FLAGS = frozenset({"y", "e", "o", "c", "p", "r", "x", "w"})

_CJK_IDEOGRAPH = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
# A run of ideographs, or a word of other letters/digits with internal dots so "10.4" stays whole.
_SEGMENT_RE = re.compile(
    f"(?P<cjk>[{_CJK_IDEOGRAPH}]+)"
    f"|(?P<word>(?:(?![{_CJK_IDEOGRAPH}])[^\\W_])+(?:\\.(?:(?![{_CJK_IDEOGRAPH}])[^\\W_])+)*)"
)
_CONTENT_CHAR_RE = re.compile(r"[^\W_]")

_JIEBA_LOCK = threading.Lock()
_jieba_tokenizer: jieba.Tokenizer | None = None
_pos_tokenizer: jieba.posseg.POSTokenizer | None = None


class LearnedWords(Protocol):
    """Words learned from an index's documents (:class:`qa.index.vocabulary.Vocabulary`): ``{word: POS flag}``."""

    @property
    def words(self) -> Mapping[str, str]: ...


class Term(NamedTuple):
    """A query word with its jieba part-of-speech flag."""

    word: str
    flag: str


def get_jieba() -> jieba.Tokenizer:
    """Return the process-wide jieba tokenizer, loading its dictionary once (never changed afterwards).

    Thread-safe: the first callers block on a lock while one of them builds the tokenizer.
    """
    global _jieba_tokenizer
    tokenizer = _jieba_tokenizer
    if tokenizer is not None:
        return tokenizer
    with _JIEBA_LOCK:
        # Double-checked: another thread may have finished the load while we waited for the lock.
        if _jieba_tokenizer is None:
            import jieba

            # jieba logs "Building prefix dict ..." at DEBUG to its own stderr handler; keep it quiet.
            jieba.setLogLevel(logging.WARNING)
            tokenizer = jieba.Tokenizer()
            tokenizer.initialize()
            _jieba_tokenizer = tokenizer
        return _jieba_tokenizer


def pos_tokenizer() -> jieba.posseg.POSTokenizer:
    """Return the process-wide POS tagger sharing :func:`get_jieba`'s dictionary."""
    global _pos_tokenizer
    if _pos_tokenizer is not None:
        return _pos_tokenizer
    base = get_jieba()
    with _JIEBA_LOCK:
        if _pos_tokenizer is None:
            # Imported here: importing jieba.posseg reads the whole tag dictionary at import time.
            import jieba.posseg

            _pos_tokenizer = jieba.posseg.POSTokenizer(base)
        return _pos_tokenizer


def _asks(word: str) -> bool:
    """True for question words jieba glues into longer words (哪几个, 由谁来, 是什么)."""
    return word[0] == "哪" or "谁" in word or any(q in word for q in QUESTION_WORDS)


def _is_content(token: str) -> bool:
    """True if the token has at least one letter, digit or ideograph (i.e. it is not punctuation)."""
    return bool(_CONTENT_CHAR_RE.search(token))


@dataclass(frozen=True, slots=True)
class CharNgramTokenizer:
    """CJK character n-grams plus whole non-CJK words.

    N-grams are taken inside runs of consecutive ideographs only, so no n-gram spans punctuation or a
    number. Words of other scripts and numbers are kept whole ("gdp", "10.4"); punctuation is dropped.
    Occurrences of ``separators`` (question words) are cut out of a run before n-gramming, so neither
    "什么" nor bridging grams like "是什"/"么有" are emitted.

    Attributes:
        ngrams: n-gram sizes to emit, each in [1, 3]; (1, 2) = unigrams + bigrams.
        stopwords: tokens (unigrams, bigrams or words) to drop.
        separators: multi-character words removed from CJK runs before n-gramming.
    """

    ngrams: tuple[int, ...] = (1, 2)
    stopwords: frozenset[str] = STOPWORDS
    separators: frozenset[str] = QUESTION_WORDS

    def __post_init__(self) -> None:
        if not self.ngrams:
            raise ValueError("ngrams is empty; give at least one size in [1, 3]")
        for n in self.ngrams:
            if not isinstance(n, int) or not 1 <= n <= 3:
                raise ValueError(f"ngram size {n!r} is out of range; allowed sizes are 1, 2, 3")

    def __call__(self, text: str) -> list[str]:
        stop = self.stopwords
        splitter = _separator_re(self.separators)
        tokens: list[str] = []
        for match in _SEGMENT_RE.finditer(normalize(text)):
            if match.lastgroup == "word":
                if match.group(0) not in stop:
                    tokens.append(match.group(0))
                continue
            pieces = splitter.split(match.group(0)) if splitter else [match.group(0)]
            for run in pieces:
                # Emit by position so the token stream reads in text order (handy when debugging).
                for i in range(len(run)):
                    for n in self.ngrams:
                        if i + n <= len(run):
                            gram = run[i : i + n]
                            if gram not in stop:
                                tokens.append(gram)
        return tokens


@cache
def _separator_re(separators: frozenset[str]) -> re.Pattern[str] | None:
    """Regex matching any separator word, longest first so 为什么 wins over 什么."""
    words = sorted((w for w in separators if w), key=lambda w: (-len(w), w))
    return re.compile("|".join(map(re.escape, words))) if words else None


@dataclass(frozen=True, slots=True)
class JiebaTokenizer:
    """jieba word segmentation (jieba's own dictionary; the same for every index).

    Attributes:
        mode: "exact" (one segmentation) or "search" (adds the dictionary sub-words of long words, e.g.
            古塔化工园 -> 古塔, 化工, 化工园, 古塔化工园).
        stopwords: words to drop.
    """

    mode: Literal["exact", "search"] = "exact"
    stopwords: frozenset[str] = STOPWORDS

    def __post_init__(self) -> None:
        if self.mode not in ("exact", "search"):
            raise ValueError(f"jieba mode {self.mode!r} is not supported; allowed: 'exact', 'search'")

    def __call__(self, text: str) -> list[str]:
        tokenizer = get_jieba()
        text = normalize(text)
        words = tokenizer.lcut_for_search(text) if self.mode == "search" else tokenizer.lcut(text)
        stop = self.stopwords
        return [w for w in words if w not in stop and _is_content(w)]


@dataclass(frozen=True, slots=True)
class MixedTokenizer:
    """Character n-grams and jieba words in one token stream.

    jieba words are prefixed with ``word_prefix`` so "w:经济" never collides with the bigram "经济":
    a whole-word match then scores on top of the bigram match. Single-character words are skipped
    because the unigrams already carry them.

    Attributes:
        chars: the character n-gram part.
        words: the jieba word part.
        word_prefix: prefix marking word tokens.
    """

    chars: CharNgramTokenizer = CharNgramTokenizer()
    words: JiebaTokenizer = JiebaTokenizer()
    word_prefix: str = "w:"

    def __call__(self, text: str) -> list[str]:
        text = normalize(text)
        word_tokens = [self.word_prefix + w for w in self.words(text) if len(w) > 1]
        return self.chars(text) + word_tokens


_FACTORIES: dict[str, Callable[[], Tokenizer]] = {
    "char": lambda: CharNgramTokenizer(ngrams=(1, 2)),
    "char2": lambda: CharNgramTokenizer(ngrams=(2,)),
    "char123": lambda: CharNgramTokenizer(ngrams=(1, 2, 3)),
    "jieba": lambda: JiebaTokenizer(mode="exact"),
    "jieba_search": lambda: JiebaTokenizer(mode="search"),
    "mixed": lambda: MixedTokenizer(),
}
TOKENIZER_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def create_tokenizer(name: str) -> Tokenizer:
    """Create a tokenizer by name.

    Args:
        name: one of :data:`TOKENIZER_NAMES`: "char" (CJK 1+2-grams), "char2" (bigrams only), "char123"
            (1+2+3-grams), "jieba"
            (exact mode), "jieba_search" (search mode), "mixed" (char 1+2-grams plus jieba words).

    Returns:
        A callable ``str -> list[str]``.

    Raises:
        ValueError: if ``name`` is not a known tokenizer name.
    """
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown tokenizer {name!r}; allowed: {', '.join(TOKENIZER_NAMES)}") from None
    return factory()


def _tagged(text: str, vocabulary: LearnedWords | None) -> list[Term]:
    """jieba's words of `text` with their POS flags, runs of words that spell a learned word joined into it.

    A learned word is only taken where its ends fall on jieba's word boundaries: a learned fragment can then never
    cut a word jieba reads well, and 古塔/化工/园 becomes 古塔化工园 with the learned word's flag.
    """
    pieces = [Term(pair.word, pair.flag) for pair in pos_tokenizer().lcut(text)]
    if vocabulary is None or not pieces:
        return pieces
    words = vocabulary.words
    if not words:
        return pieces
    longest = max(len(w) for w in words)
    merged: list[Term] = []
    i = 0
    while i < len(pieces):
        joined, best, j = "", 0, i
        while j < len(pieces) and len(joined) + len(pieces[j].word) <= longest:
            joined += pieces[j].word
            j += 1
            if j - i > 1 and joined in words:
                best = j
        if best:
            word = "".join(p.word for p in pieces[i:best])
            merged.append(Term(word, words[word]))
            i = best
        else:
            merged.append(pieces[i])
            i += 1
    return merged


def content_terms(query: str, vocabulary: LearnedWords | None = None) -> list[Term]:
    """Return the content words of a query with their jieba POS flags, in query order, deduplicated.

    Drops question words, stopwords, punctuation and function-word POS classes (particles, pronouns,
    prepositions, conjunctions, modal words).

    Args:
        query: the user question (raw or normalised).
        vocabulary: the words learned from the searched index's documents; jieba's words it spells are joined.

    Returns:
        ``Term(word, flag)`` tuples, e.g. ``[("古塔区", "ns"), ("讲话", "n"), ...]``.
    """
    seen: set[str] = set()
    terms: list[Term] = []
    for word, flag in _tagged(normalize(query), vocabulary):
        if word in seen or word in STOPWORDS or not _is_content(word) or _asks(word):
            continue
        if flag in _FUNCTION_FLAGS or flag.startswith("u"):
            continue
        seen.add(word)
        terms.append(Term(word, flag))
    return terms


def named_entities(query: str, vocabulary: LearnedWords | None = None) -> list[str]:
    """Return the proper names in a query: places, persons, organisations and other proper nouns.

    Combines jieba's POS flags (:data:`ENTITY_FLAGS`) with a substring scan for the learned names (3+ characters)
    of `vocabulary`, which catches a name even when segmentation glues it to a neighbour. Names contained in a
    longer found name (古塔 inside 古塔化工园) are dropped.

    Args:
        query: the user question (raw or normalised).
        vocabulary: the words learned from the searched index's documents (None: jieba's tags alone).

    Returns:
        Names in order of first appearance in the normalised query.
    """
    text = normalize(query)
    found = {t.word for t in content_terms(text, vocabulary) if t.flag.startswith(ENTITY_FLAGS)}
    if vocabulary is not None:
        # Only names of 3+ characters by substring: a learned 2-character "name" inside another word (施策 in 精准施策)
        # is read as one only where jieba's segmentation puts it on its own (content_terms above).
        found.update(word for word, flag in vocabulary.words.items()
                     if len(word) >= 3 and flag.startswith(ENTITY_FLAGS) and word in text)
    longest = [w for w in found if not any(w != other and w in other for other in found)]
    return sorted(longest, key=lambda w: (text.find(w), w))
