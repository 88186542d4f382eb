"""Per-prefix METEOR rewards (spec section 2.3), the original's bottleneck, made fast with identical values.

The reward METEOR is NLTK's ``single_meteor_score`` (alpha 0.9, beta 3, gamma 0.5; exact, Porter
stem and WordNet synonym matching). NLTK's WordNet data is a separate download; when it is not
installed the synonym stage matches nothing, so the score uses **exact and stem matches only**
(:func:`wordnet_source` says which one is in use). This METEOR is not the evaluation metric
(the Java METEOR 1.5 of the ActivityNet evaluator).

Speed without changing a value: :class:`PrefixMeteor` memoises the stemmer and the synonym
lookups (NLTK re-stems every word of every prefix), and can spread samples over a process pool.
:func:`plain_prefix_meteor` is the original's loop, kept as the reference for tests and the bench.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch

ALPHA, BETA, GAMMA = 0.9, 3.0, 0.5


class _NoSynonyms:
    """Stands in for WordNet when its data is missing: no synonyms, so exact + stem matching only."""

    def synsets(self, word: str, *args: Any, **kwargs: Any) -> list:
        return []


@functools.lru_cache(maxsize=1)
def wordnet_source() -> tuple[Any, str]:
    """(WordNet reader or the stand-in, 'wordnet' or 'none: exact+stem only')."""
    try:
        import nltk

        nltk.data.find("corpora/wordnet")
        from nltk.corpus import wordnet

        wordnet.synsets("dog")
        return wordnet, "wordnet"
    except (LookupError, OSError, ImportError):
        return _NoSynonyms(), "none: exact+stem only"


class _CachedStemmer:
    def __init__(self) -> None:
        from nltk.stem.porter import PorterStemmer

        self._stem = functools.lru_cache(maxsize=1 << 16)(PorterStemmer().stem)

    def stem(self, word: str) -> str:
        return self._stem(word)


class _CachedWordnet:
    def __init__(self, wordnet: Any) -> None:
        self._synsets = functools.lru_cache(maxsize=1 << 16)(lambda w: tuple(wordnet.synsets(w)))

    def synsets(self, word: str, *args: Any, **kwargs: Any) -> tuple:
        return self._synsets(word)


def meteor(reference: Sequence[str], hypothesis: Sequence[str], stemmer: Any = None, wordnet: Any = None) -> float:
    from nltk.stem.porter import PorterStemmer
    from nltk.translate.meteor_score import single_meteor_score

    if not hypothesis:
        return 0.0
    return float(single_meteor_score(list(reference), list(hypothesis), stemmer=stemmer or PorterStemmer(),
                                     wordnet=wordnet or wordnet_source()[0], alpha=ALPHA, beta=BETA, gamma=GAMMA))


def plain_prefix_meteor(reference: str, words: Sequence[str], n: int) -> list[float]:
    """M_l = METEOR(reference, words[:l+1]) for l = 0 .. n-2: one fresh NLTK call per prefix."""
    ref = reference.split()
    return [meteor(ref, words[:k + 1]) for k in range(max(n - 1, 0))]


_WORKER_STATE: dict[str, Any] = {}


def _cached_prefix_meteor(reference: str, words: Sequence[str], n: int) -> list[float]:
    if "stemmer" not in _WORKER_STATE:
        _WORKER_STATE["stemmer"] = _CachedStemmer()
        _WORKER_STATE["wordnet"] = _CachedWordnet(wordnet_source()[0])
    st, wn = _WORKER_STATE["stemmer"], _WORKER_STATE["wordnet"]
    ref = reference.split()
    return [meteor(ref, words[:k + 1], st, wn) for k in range(max(n - 1, 0))]


def _job(args: tuple) -> list[float]:
    return _cached_prefix_meteor(*args)


class PrefixMeteor:
    """Per-prefix METEOR of many samples: memoised stems/synonyms, optionally over ``processes``."""

    def __init__(self, processes: int = 0) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None

    def __call__(self, references: Sequence[str], words: Sequence[Sequence[str]], lengths: Sequence[int]) -> list:
        jobs = list(zip(references, words, lengths, strict=True))
        if self.processes > 1 and len(jobs) > 1:
            if self._pool is None:
                _job(("", ["warm"], 2))  # import NLTK and build the caches before forking: workers start warm
                self._pool = ProcessPoolExecutor(self.processes)
            return list(self._pool.map(_job, jobs, chunksize=max(1, len(jobs) // (4 * self.processes))))
        return [_job(j) for j in jobs]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def hypothesis_words(itos: Sequence[str], ids: Sequence[int], keep_specials: bool) -> list[str]:
    """The sampled words a prefix is scored with; the original keeps ``</s>``/``<blank>`` (compat)."""
    if keep_specials:
        return [itos[int(i)] for i in ids]
    return [itos[int(i)] for i in ids if int(i) > 3]


def worker_rewards(prefix_scores: Sequence[Sequence[float]], length: int, eos_negative: bool) -> torch.Tensor:
    """ΔMETEOR (B,L): r_0 = M_0, r_t = M_t − M_{t−1} for t ≤ n−2; at t = n−1 (``</s>``) −M_{n−2} when
    ``eos_negative`` (the original), 0 otherwise; 0 beyond."""
    out = torch.zeros(len(prefix_scores), length, dtype=torch.float64)
    for b, m in enumerate(prefix_scores):
        if not m:
            continue
        mt = torch.tensor(m, dtype=torch.float64)
        out[b, :len(m)] = mt - torch.cat([mt.new_zeros(1), mt[:-1]])
        if eos_negative and len(m) < length:
            out[b, len(m)] = -mt[-1]
    return out.float()


def manager_rewards(r: torch.Tensor, seg: torch.Tensor, gamma: float) -> torch.Tensor:
    """Discounted return over boundaries: q_k = r at boundary p_k, R_k = Σ_{j≥k} γ^{j−k} q_j, written at p_k.

    ``seg`` must already carry the forced boundary at position 0.
    """
    out = torch.zeros_like(r)
    acc = torch.zeros(r.shape[0], dtype=r.dtype, device=r.device)
    for t in range(r.shape[1] - 1, -1, -1):
        hit = seg[:, t].bool()
        acc = torch.where(hit, r[:, t] + gamma * acc, acc)
        out[:, t] = torch.where(hit, acc, torch.zeros_like(acc))
    return out
