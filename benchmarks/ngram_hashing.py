"""N-gram hashing: fmops' vectorised hashers vs scikit-learn's HashingVectorizer, same texts, one run.

    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/ngram_hashing.py sms_spam ag_news

Word 1-2 grams, and char_wb 2-4 grams (`specialist.ngram.char_ngrams`). Prints texts/s of each (best of
3 passes over 20,000 texts, after a warm-up pass) and checks that both count the same number of n-grams
per text.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer

from fmops_pipelines.data.readers import load_dataset
from fmops_pipelines.spec import get_spec
from fmops_pipelines.specialist.hashing import CharNgramHasher, WordNgramHasher


def rate(transform, texts: list[str]) -> float:
    transform(texts)
    best = min(_timed(transform, texts) for _ in range(3))
    return len(texts) / best


def _timed(transform, texts: list[str]) -> float:
    start = time.perf_counter()
    transform(texts)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="+")
    parser.add_argument("--texts", type=int, default=20000)
    args = parser.parse_args()
    for task in args.tasks:
        texts = load_dataset(get_spec(task))["text"].tolist()
        texts = (texts * -(-args.texts // len(texts)))[: args.texts]
        pairs = {"word 1-2": (WordNgramHasher((1, 2), 2**20),
                              HashingVectorizer(n_features=2**20, ngram_range=(1, 2), alternate_sign=False, norm=None)),
                 "char_wb 2-4": (CharNgramHasher((2, 4), 2**20),
                                 HashingVectorizer(n_features=2**20, analyzer="char_wb", ngram_range=(2, 4),
                                                   alternate_sign=False, norm=None))}
        for name, (ours, ref) in pairs.items():
            same = np.array_equal(np.asarray(ours.transform(texts).sum(axis=1)).ravel(),
                                  np.asarray(ref.transform(texts).sum(axis=1)).ravel())
            fast, slow = rate(ours.transform, texts), rate(ref.transform, texts)
            print(f"{task:<14} {name:<12} fmops {fast:>10,.0f} texts/s   scikit-learn {slow:>10,.0f} texts/s   "
                  f"{fast / slow:.1f}x   same n-gram counts: {same}", flush=True)


if __name__ == "__main__":
    main()
