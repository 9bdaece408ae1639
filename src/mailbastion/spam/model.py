"""The learned classifier: hashed tokens into a linear model (scikit-learn) that learns incrementally.

    model = SpamModel.load(path)          # or SpamModel.empty()
    p = model.probability(tok)            # P(spam) for one message's tokens, ~0.2 ms
    model.fit(token_lists, labels)        # bulk training, warm-started from the current weights
    model.learn(tok, is_spam=True)        # one message: nudged until it is on the right side
    model.save(path)                      # atomic (tmp + rename)

Vectorizer: `HashingVectorizer` (2**20 features, binary) weighted by inverse document frequency and
l2-normalised, so the vocabulary never grows. The IDF is computed by the first bulk training (the shipped
model's) and then kept, so that later learning stays in the same feature space; it also makes single-message
learning move the rare, telling tokens rather than the ones every message has (`hn:date`).
Learner: `SGDClassifier(loss="log_loss")`; bulk training uses averaged SGD over several epochs,
single-message learning uses constant-step `partial_fit`. The file stores only non-zero weights, the IDF of
seen features, the intercept and metadata (joblib, compressed): small, and independent of the
scikit-learn version that wrote it.

Scoring needs no scikit-learn: a message's columns are HashingVectorizer's (`feature_indices`: MurmurHash3
of each token through `mmh3`, the function scikit-learn's hasher uses) and its probability one dot product.
scikit-learn and SciPy are imported when the model first learns or scores a batch, so a server process
that only scores (every SMTP acceptor; the all-in-one until someone reports mail) does not carry them:
about 100 MB of RSS per process (docs/performance.md, fifth session).
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib  # type: ignore[import-untyped]
import mmh3
import numpy as np

if TYPE_CHECKING:  # imported where the model learns or scores a batch (module docstring)
    from scipy import sparse  # type: ignore[import-untyped]
    from sklearn.feature_extraction.text import HashingVectorizer  # type: ignore[import-untyped]
    from sklearn.linear_model import SGDClassifier  # type: ignore[import-untyped]

FORMAT = 2
N_FEATURES = 2**20
ALPHA = 1e-7  # L2 regularisation: chosen on a held-out split of the SpamAssassin corpus (bench/)
EPOCHS = 60
LEARN_STEP = 0.1  # constant step of single-message learning
LEARN_MAX_STEPS = 200
LEARN_TARGET = 0.95  # single-message learning stops once P(right label) reaches this


def _hashable(tokens: Iterable[str]) -> Sequence[str | bytes]:
    """`tokens` as both hashers take them without failing. Should a token hold a lone surrogate (the
    extractor decodes with "replace" and 3,000 fuzzed messages gave none, but the compat32 tree reads raw
    bytes with surrogateescape, and nothing here forbids one), scikit-learn's hasher would raise and
    `mmh3.hash` (5.x) crash the process (SIGSEGV), since each encodes a str as strict UTF-8. Then every
    token is given as bytes, UTF-8 with surrogates passed through, which for every other token are the
    very bytes either hasher would have hashed: the columns do not move."""
    tokens = tokens if isinstance(tokens, (list, tuple)) else list(tokens)
    try:
        "".join(tokens).encode("utf-8")  # Python's UTF-8 codec refuses every surrogate, paired or not
    except UnicodeEncodeError:
        return [t.encode("utf-8", "surrogatepass") for t in tokens]
    return tokens


def make_vectorizer() -> HashingVectorizer:
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(analyzer=_hashable, n_features=N_FEATURES, alternate_sign=False, norm=None,
                             binary=True)


@functools.cache
def _vectorizer() -> HashingVectorizer:
    """The one vectorizer learning and batch scoring share (made on first use: scikit-learn)."""
    return make_vectorizer()


def feature_indices(tokens: Iterable[str]) -> np.ndarray:
    """The columns `make_vectorizer()` gives a message's `tokens`, sorted and each once (binary), without
    scikit-learn: its hasher takes MurmurHash3 (x86, 32-bit, seed 0) of the token's UTF-8 and keeps
    |h| mod 2**20 (for h = -2**31, a value it defines to equal |h| mod 2**20). `mmh3.hash` is that
    function; tests/spam hold the columns equal to the vectorizer's, Unicode tokens and lone surrogates
    included (`_hashable`)."""
    hashes = np.fromiter(map(mmh3.hash, _hashable(tokens)), dtype=np.int64)
    # np.unique's result (sorted, each once) by a sort and one comparison of neighbours: numpy 2's unique hashes
    # the values first, which for a message's few hundred columns costs more than it saves (~60-90 us).
    columns = np.sort(np.abs(hashes) % N_FEATURES)
    if columns.size > 1:
        first = np.empty(columns.size, dtype=bool)
        first[0] = True
        np.not_equal(columns[1:], columns[:-1], out=first[1:])
        columns = columns[first]
    return columns


class SpamModel:
    """A binary linear model over hashed tokens. Not thread-safe for writers; readers may share it."""

    def __init__(self, coef: np.ndarray, intercept: float, idf: np.ndarray, meta: dict[str, Any] | None = None) -> None:
        self._coef = coef  # float64[N_FEATURES]: the weights, what scoring reads
        self._intercept = intercept
        self._idf = idf  # float64[N_FEATURES]; all ones until the first bulk training
        self._est: SGDClassifier | None = None  # the learner, made when the model first learns
        self.meta: dict[str, Any] = dict(meta or {})

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def empty(cls) -> SpamModel:
        meta: dict[str, Any] = {"trained_on": [], "ham": 0, "spam": 0}
        return cls._from_weights(np.zeros(N_FEATURES), 0.0, np.ones(N_FEATURES), meta)

    @classmethod
    def _from_weights(cls, coef: np.ndarray, intercept: float, idf: np.ndarray,
                      meta: dict[str, Any]) -> SpamModel:
        return cls(np.asarray(coef, dtype=np.float64).ravel().copy(), float(intercept), idf, meta)

    def _estimator(self) -> SGDClassifier:
        """The single-message learner, holding the current weights (made on first use: scikit-learn)."""
        if self._est is None:
            from sklearn.linear_model import SGDClassifier

            est = SGDClassifier(loss="log_loss", alpha=ALPHA, learning_rate="constant", eta0=LEARN_STEP)
            x0 = _vectorizer().transform([["st:init"]])
            est.partial_fit(x0, [0], classes=[0, 1], sample_weight=[1e-12])  # allocates; weights set below
            est.coef_ = self._coef.reshape(1, -1).copy()
            est.intercept_ = np.array([self._intercept])
            self._est = est
        return self._est

    def _take_weights(self, est: SGDClassifier) -> None:
        """Make `est`'s weights the model's (after it learnt)."""
        self._coef = np.asarray(est.coef_, dtype=np.float64).ravel().copy()
        self._intercept = float(est.intercept_[0])

    @classmethod
    def load(cls, path: Path) -> SpamModel:
        """Raises ValueError for a file that is not a model of this format; OSError when unreadable."""
        data = joblib.load(path)
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("n_features") != N_FEATURES:
            raise ValueError(f"{path}: not a mailbastion spam model (format {FORMAT})")
        coef = np.zeros(N_FEATURES)
        coef[np.asarray(data["indices"], dtype=np.int64)] = np.asarray(data["values"], dtype=np.float64)
        idf = np.full(N_FEATURES, float(data["idf_default"]))
        idf[np.asarray(data["idf_indices"], dtype=np.int64)] = np.asarray(data["idf_values"], dtype=np.float64)
        return cls._from_weights(coef, float(data["intercept"]), idf, dict(data.get("meta", {})))

    def save(self, path: Path) -> None:
        coef = self._coef
        nz = np.flatnonzero(np.abs(coef) > 1e-7)
        idf_default = float(self._idf.max())
        seen = np.flatnonzero(self._idf != idf_default)
        data = {
            "format": FORMAT, "n_features": N_FEATURES, "indices": nz.astype(np.int32),
            "values": coef[nz].astype(np.float32), "intercept": self._intercept,
            "idf_indices": seen.astype(np.int32), "idf_values": self._idf[seen].astype(np.float32),
            "idf_default": idf_default, "meta": self.meta,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".model-", dir=path.parent)
        os.close(fd)
        try:
            joblib.dump(data, tmp, compress=3)
            os.chmod(tmp, 0o644)  # the gateway user reads the site model
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- use ----------------------------------------------------------------------------------------
    def probability(self, tokens: list[str]) -> float:
        """P(spam) in [0, 1] for one message: the same sum as `probabilities` (binary hashed tokens times
        IDF, l2-normalised, dot the weights, plus the intercept) over the message's few hundred features,
        without scikit-learn's per-call validation of a 1 x 2**20 matrix three times over (~1 ms -> ~0.2 ms
        a message on the gateway's path; equal to the batch result within float rounding, tests/spam), and
        without scikit-learn at all (`feature_indices`)."""
        features = feature_indices(tokens)
        weights = self._idf[features]
        norm = math.sqrt(float(np.dot(weights, weights)))
        d = self._intercept
        if norm:
            d += float(np.dot(weights, self._coef[features])) / norm
        return 1.0 / (1.0 + math.exp(-min(40.0, max(-40.0, d))))

    def vectorize(self, token_lists: Sequence[list[str]]) -> sparse.csr_matrix:
        from scipy import sparse
        from sklearn.preprocessing import normalize

        x = _vectorizer().transform(token_lists)
        return normalize(sparse.csr_matrix(x.multiply(self._idf)), norm="l2", copy=False)

    def probabilities(self, token_lists: Sequence[list[str]]) -> np.ndarray:
        x = self.vectorize(token_lists)
        d = np.clip(np.asarray(self._estimator().decision_function(x), dtype=np.float64), -40, 40)
        out: np.ndarray = 1.0 / (1.0 + np.exp(-d))
        return out

    @property
    def is_trained(self) -> bool:
        return bool(self.meta.get("ham")) and bool(self.meta.get("spam"))

    # -- learning -----------------------------------------------------------------------------------
    def fit(self, token_lists: Sequence[list[str]], labels: Sequence[int], *, source: str = "",
            epochs: int = EPOCHS) -> None:
        """Bulk training on both classes, starting from the current weights (so a site's mail is
        learned on top of the shipped model). With one class only, falls back to `learn` per message."""
        if len(set(labels)) < 2:
            for tok, y in zip(token_lists, labels, strict=True):
                self.learn(tok, is_spam=bool(y), source=source)
            return
        if not self.is_trained:  # the first bulk training fixes the IDF for good
            counts = _vectorizer().transform(token_lists)
            df = np.bincount(counts.indices, minlength=N_FEATURES)
            n = len(token_lists)
            self._idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
        from sklearn.linear_model import SGDClassifier

        x = self.vectorize(token_lists)
        bulk = SGDClassifier(loss="log_loss", alpha=ALPHA, max_iter=epochs, tol=None, average=10, random_state=0)
        bulk.fit(x, np.asarray(labels), coef_init=self._coef.reshape(1, -1).copy(),
                 intercept_init=np.array([self._intercept]))
        self._take_weights(bulk)
        self._est = None  # the single-message learner starts again from these weights
        self._count(labels, source)

    def learn(self, tokens: list[str], *, is_spam: bool, source: str = "") -> int:
        """Learn one message: constant-step updates until P(its label) >= LEARN_TARGET (train until
        right, as sa-learn does in effect). Returns the number of steps taken (0: already known)."""
        x = self.vectorize([tokens])
        est = self._estimator()
        y = 1 if is_spam else 0
        target = math.log(LEARN_TARGET / (1 - LEARN_TARGET))
        steps = 0
        while steps < LEARN_MAX_STEPS:
            d = float(est.decision_function(x)[0])
            if (d if is_spam else -d) >= target:
                break
            est.partial_fit(x, [y], sample_weight=[10.0])
            steps += 1
        if steps:
            self._take_weights(est)
        self._count([y], source)
        return steps

    def _count(self, labels: Sequence[int], source: str) -> None:
        n_spam = int(sum(1 for y in labels if y))
        self.meta["spam"] = int(self.meta.get("spam", 0)) + n_spam
        self.meta["ham"] = int(self.meta.get("ham", 0)) + len(labels) - n_spam
        if source:
            trained = list(self.meta.get("trained_on", []))
            if source not in trained:
                trained.append(source)
            self.meta["trained_on"] = trained[-50:]
