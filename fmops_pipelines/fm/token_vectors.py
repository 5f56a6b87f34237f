"""The embedding FM's token vectors as a cheap text representation: each text is the frequency-weighted mean of
its tokens' input embeddings (the encoder's first layer, no forward pass), reduced by PCA.

Model2Vec's observation (Tulkens & van Dongen) is that an encoder's token vectors, pooled, keep much of what its
sentence embeddings know; for a classifier on ~200 gold rows they keep lexical identity too, which the sentence
embedding blurs. Measured with logistic regression on the shipped tasks' gold rows (three gold draws each, test
macro-F1; docs/measurements.md): the sentence embeddings beside TF-IDF 0.928 / 0.935 / 0.843 on youtube_spam /
sms_spam / ag_news, with these vectors beside them too 0.942 / 0.955 / 0.853. Costs a tokenizer pass (tens of
thousands of texts a second) and, once per process, a PCA of the vocabulary's vectors (a second or two).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DIMS = 256  # PCA components kept (of MiniLM's 384)
CHUNK = 4096  # texts tokenized at once
SIF = 1e-4  # smooth inverse frequency over Zipf probabilities from the vocabulary rank (model2vec's default)


class TokenVectors:
    """Texts -> L2-normalised SIF-weighted means of the PCA-reduced input token vectors of one encoder."""

    def __init__(self, input_embeddings: np.ndarray, tokenizer):
        """`input_embeddings`: [vocab, d] (the encoder's input embedding matrix); `tokenizer`: a `tokenizers.Tokenizer`
        (the fast tokenizer's backend), used without special tokens or truncation."""
        from sklearn.decomposition import PCA

        raw = np.asarray(input_embeddings, dtype=np.float32)
        dims = min(DIMS, raw.shape[1], raw.shape[0] - 1)
        self.vectors = PCA(dims, random_state=0).fit_transform(raw - raw.mean(axis=0)).astype(np.float32, copy=False)
        # tokenizers list frequent tokens first: the rank stands in for frequency (Zipf)
        rank = np.arange(1, len(raw) + 1, dtype=np.float64)
        self.weights = (SIF / (SIF + 1 / (rank * np.log(len(raw))))).astype(np.float32)
        self.tokenizer = tokenizer
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()

    @classmethod
    def of_sentence_transformer(cls, model) -> TokenVectors:
        """From a loaded sentence-transformers model (its first module's Hugging Face model and tokenizer)."""
        import copy

        embeddings = model[0].auto_model.get_input_embeddings().weight.detach().float().cpu().numpy()
        return cls(embeddings, copy.deepcopy(model.tokenizer.backend_tokenizer))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), dims] float32; a text without tokens is a zero row. Tokenized CHUNK texts at a time: the
        tokenizer's Encoding objects for a 67k-row pool held ~300 MB at once."""
        texts = [str(t) for t in texts]
        out = np.zeros((len(texts), self.vectors.shape[1]), dtype=np.float32)
        for start in range(0, len(texts), CHUNK):
            out[start:start + CHUNK] = self._embed_chunk(texts[start:start + CHUNK])
        return out

    def _embed_chunk(self, texts: list[str]) -> np.ndarray:
        from scipy import sparse

        ids = [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((i for row in ids for i in row), dtype=np.int64, count=int(lengths.sum()))
        pooled = sparse.csr_matrix((self.weights[flat], flat, np.concatenate([[0], np.cumsum(lengths)])),
                                   shape=(len(texts), len(self.vectors))) @ self.vectors
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.where(norms == 0, 1, norms)
