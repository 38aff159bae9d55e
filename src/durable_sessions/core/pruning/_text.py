"""Index terms for the relevance pruner: tokenization, stop words and stemming."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Final

__all__ = ["index_terms", "tokenize"]

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# One token per CJK ideograph or kana (those scripts do not separate words with spaces), and one
# per run of other letters or digits. ``[^\W_...]`` is "a word character, but not _ nor CJK".
_WORD_RE: Final = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")

# Function words that say nothing about what a turn is about. The core list is bm25s's English
# stop words; the rest are pronouns and question words that chat queries are full of.
_EXTRA_STOPWORD_TEXT: Final = (
    "i me my mine myself you your yours we us our ours he him his she her it its what which "
    "who whom when where why how do does did done am been being have has had can could would "
    "should shall may might must again s t just so than too very"
)
_EXTRA_STOPWORDS: Final = frozenset(_EXTRA_STOPWORD_TEXT.split())
_stopwords: frozenset[str] | None = None


def _get_stopwords() -> frozenset[str]:
    global _stopwords
    if _stopwords is None:
        from bm25s.stopwords import STOPWORDS_EN

        _stopwords = frozenset(str(word) for word in STOPWORDS_EN) | _EXTRA_STOPWORDS
    return _stopwords


def tokenize(text: str) -> list[str]:
    """Split text into lowercase words for BM25, without stemming.

    Unicode-aware: the text is NFKC-normalised and case-folded, words are runs of letters and
    digits in any script, each CJK ideograph or kana character is its own term, and English stop
    words are dropped.

    Args:
        text: Any text.

    Returns:
        The terms in order, with repeats (BM25 needs term frequencies).
    """
    stop = _get_stopwords()
    folded = unicodedata.normalize("NFKC", text).casefold()
    return [word for word in _WORD_RE.findall(folded) if word not in stop]


@lru_cache(maxsize=1)
def _stem_words() -> object:
    import Stemmer  # PyStemmer: Snowball stemmers in C

    return Stemmer.Stemmer("english").stemWords


def index_terms(text: str) -> list[str]:
    """The terms the relevance pruner indexes: :func:`tokenize`, then the English Snowball
    stemmer (PyStemmer), so "painted", "painting" and "paints" are one term. Words in other
    scripts pass through the stemmer unchanged.

    Args:
        text: Any text.

    Returns:
        The stemmed terms in order, with repeats.
    """
    words = tokenize(text)
    if not words:
        return words
    stem = _stem_words()
    stemmed: list[str] = stem(words)  # type: ignore[operator]
    return stemmed
