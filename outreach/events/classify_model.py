"""A small statistical reply model beside the rules of outreach.events.classify.

Multinomial naive Bayes over binary features of the visible reply: words, word pairs and
character n-grams (3 to 5 letters, across word boundaries), after lower-casing and accent
folding (so "désinscrire", "desinscrire" and "DÉSINSCRIRE" are one word, and "abmelden",
"abgemeldet" share "abme"). Pure Python, no dependency; training is counting, so the same
examples give the same counts on any machine.

The model is trained when a process first needs it, from ``classify_training.txt`` beside
this file: the visible text and label of each labeled reply, extracted from the corpus by
``python -m outreach.events.classify_train`` (a test checks that the shipped file is exactly
what the corpus gives). Counting in a fixed order and summing in sorted order make the same
text get the same probabilities, to the bit, on every run.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TRAINING_DATA = Path(__file__).with_name("classify_training.txt")

# Additive smoothing of the per-label feature counts (0.1 read better than 0.5 and 1 in the
# leave-one-set-out runs, none of which scored fresh6.txt).
ALPHA = 0.1
# Scale of the summed log-likelihoods before the softmax. Naive Bayes adds up hundreds of
# overlapping n-grams as if independent, which makes every posterior 0.999…; dividing by
# this brings them to probabilities that thresholds can be set on.
TEMPERATURE = 12.0
CHAR_SIZES = (3, 4, 5)

_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_URL = re.compile(r"https?://\S+|www\.\S+")
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|\d+")
_COMBINING = re.compile(r"[\u0300-\u036f]")  # the accents NFKD splits off Latin letters
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'"})


def fold(text: str) -> str:
    """Lower case without accents: "Désolé, MÜLLER" -> "desole, muller"."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES).casefold())
    return _COMBINING.sub("", decomposed)


def words(text: str) -> list[str]:
    text = _URL.sub(" _url_ ", _ADDRESS.sub(" _address_ ", text))
    return [w if not w.isdigit() else "0" for w in _WORD.findall(fold(text))]


def features(text: str) -> set[str]:
    """The binary features of a text: ``w:`` words, ``b:`` word pairs, ``c:`` n-grams."""
    found = words(text)
    out = {f"w:{w}" for w in found}
    padded = ["^", *found, "$"]
    out.update(f"b:{a} {b}" for a, b in itertools.pairwise(padded))
    line = f" {' '.join(found)} "
    for size in CHAR_SIZES:
        out.update(f"c:{line[i : i + size]}" for i in range(len(line) - size + 1))
    return out


@dataclass(frozen=True)
class Guess:
    label: str
    probability: float
    probabilities: dict[str, float]
    words: tuple[str, ...]  # the readable features that pulled most toward ``label``


class Model:
    """Feature counts per label; ``guess`` gives the posterior over the labels."""

    def __init__(self, labels: tuple[str, ...], docs: dict[str, int], counts: dict[str, list[int]]):
        self.labels = labels
        self.docs = docs
        self.counts = counts
        totals = [0] * len(labels)
        for row in counts.values():
            for i, n in enumerate(row):
                totals[i] += n
        vocabulary = len(counts)
        self._denominators = [math.log(t + ALPHA * vocabulary) for t in totals]
        # Filled as features are met; two threads racing compute the same list, harmlessly.
        self._logs: dict[str, list[float]] = {}

    def _logs_of(self, feat: str) -> list[float] | None:
        """log P(feature | label) for each label; None for a feature never seen in training."""
        logs = self._logs.get(feat)
        if logs is None and (row := self.counts.get(feat)) is not None:
            logs = [math.log(n + ALPHA) - d for n, d in zip(row, self._denominators, strict=True)]
            self._logs[feat] = logs
        return logs

    def log_likelihoods(
        self, feats: Iterable[str]
    ) -> tuple[list[float], list[tuple[str, list[float]]]]:
        scores = [0.0] * len(self.labels)
        known = []
        for feat in sorted(feats):  # sorted: the same sum, bit for bit, on every run
            logs = self._logs_of(feat)
            if logs is None:
                continue  # a feature never seen in training says nothing
            known.append((feat, logs))
            for i, value in enumerate(logs):
                scores[i] += value
        return scores, known

    def guess(self, text: str) -> Guess:
        scores, known = self.log_likelihoods(features(text))
        # Labels are equally likely before reading: the corpus's mix is not the inbox's.
        # A label with no training example is never guessed.
        scores = [
            s if self.docs[label] else -math.inf
            for s, label in zip(scores, self.labels, strict=True)
        ]
        top = max(scores)
        exps = [math.exp((s - top) / TEMPERATURE) for s in scores]
        total = sum(exps)
        probabilities = {label: e / total for label, e in zip(self.labels, exps, strict=True)}
        best = max(self.labels, key=lambda label: (probabilities[label], -self.labels.index(label)))
        return Guess(best, probabilities[best], probabilities, self._why(best, known))

    def _why(self, label: str, known: list[tuple[str, list[float]]]) -> tuple[str, ...]:
        """The words and word pairs that speak most for ``label`` against the other labels."""
        at = self.labels.index(label)
        pulls = []
        for feat, logs in known:
            if feat[0] not in "wb" or "^" in feat or "$" in feat:
                continue
            others = max(v for i, v in enumerate(logs) if i != at)
            if (pull := logs[at] - others) > 0.5:
                pulls.append((-pull, feat[2:]))
        chosen: list[str] = []
        for _, phrase in sorted(pulls):
            if not any(phrase in c or c in phrase for c in chosen):
                chosen.append(phrase)
            if len(chosen) == 3:
                break
        return tuple(chosen)


def train(examples: Iterable[tuple[str, str]], labels: tuple[str, ...]) -> Model:
    """Count each feature once per (text, label) example."""
    return train_on_features(((features(text), label) for text, label in examples), labels)


def train_on_features(examples: Iterable[tuple[set[str], str]], labels: tuple[str, ...]) -> Model:
    """``train`` from features already read (an evaluation trains many times on the same)."""
    docs = dict.fromkeys(labels, 0)
    counts: dict[str, list[int]] = {}
    for feats, label in examples:
        at = labels.index(label)
        docs[label] += 1
        for feat in feats:
            row = counts.get(feat)
            if row is None:
                row = counts[feat] = [0] * len(labels)
            row[at] += 1
    return Model(labels, docs, counts)


# --- the shipped training data -----------------------------------------------------------


def read_examples(path: Path = TRAINING_DATA) -> list[tuple[str, str]]:
    """(text, label) pairs from lines ``<set>\t<label>\t<text as a JSON string>``."""
    examples = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            _, label, text = line.split("\t", 2)
            examples.append((json.loads(text), label))
    return examples


@cache
def shipped(labels: tuple[str, ...]) -> Model:
    """The model trained on the shipped replies, once per process (about a second)."""
    return train(read_examples(), labels)
