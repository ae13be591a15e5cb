"""Leave-one-set-out evaluation of the reply labels (bench/reply_classification.py and the
goals test share it).

For each corpus file, the model is trained on the training files (classify_train.TRAINING)
other than that one, and the file is labeled by the rules plus that model: the figures of a
set are those of wording the model has not seen. A file not in the training list (a new
blind set) is labeled with the model of all training files, the one that ships. The rules
alone are scored in the same run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from outreach.events import classify_model
from outreach.events.classify import LABELS, Verdict, classify_content, rules
from outreach.events.classify_train import TRAINING
from outreach.events.mailcontent import Content, read_content
from outreach.events.tests import replies


@dataclass(frozen=True)
class Reading:
    """One labeled reply read both ways."""

    set: str
    sample: replies.Sample
    content: Content
    rules: Verdict
    combined: Verdict  # rules + the model trained without this reply's set

    @property
    def by_model(self) -> bool:
        return self.combined.label != self.rules.label


def body_of(content: Content) -> str:
    return content.visible.strip() or content.text.strip()


def rules_of(content: Content) -> Verdict:
    return rules(
        subject=content.subject,
        visible=content.visible,
        text=content.text,
        from_address=content.from_address,
        auto_submitted=content.auto_submitted,
        is_report=content.is_report,
        received=replies.RECEIVED_DAY,
        own_addresses=(replies.POOL_ADDRESS,),
    )


def leave_one_set_out(
    paths: list[Path], training: tuple[str, ...] = TRAINING
) -> dict[str, list[Reading]]:
    """Each file's replies, labeled by the rules and by rules + the model trained without it."""
    read: dict[str, list[tuple[replies.Sample, Content]]] = {}
    for path in paths:
        read[path.name] = [(s, read_content(s.raw)) for s in replies.load(path)]
    features: dict[str, list[tuple[set[str], str]]] = {}
    for name in training:
        samples = read.get(name) or [
            (s, read_content(s.raw)) for s in replies.load(replies.CORPUS.with_name(name))
        ]
        features[name] = [(classify_model.features(body_of(c)), s.label) for s, c in samples]
    out: dict[str, list[Reading]] = {}
    for name, samples in read.items():
        examples = [e for other in training if other != name for e in features[other]]
        model = classify_model.train_on_features(examples, LABELS)
        out[name] = [
            Reading(
                name,
                sample,
                content,
                rules_of(content),
                classify_content(
                    content,
                    received=replies.RECEIVED_DAY,
                    own_addresses=(replies.POOL_ADDRESS,),
                    model=model,
                ),
            )
            for sample, content in samples
        ]
    return out


def figures(truth: list[str], guess: list[str]) -> dict[str, float]:
    """Accuracy, recall of unsubscribe_request, precision of out_of_office and interested."""
    pairs = list(zip(truth, guess, strict=True))

    def precision(label: str) -> float:
        said = [t for t, g in pairs if g == label]
        return round(sum(1 for t in said if t == label) / len(said), 4) if said else 1.0

    def recall(label: str) -> float:
        actual = [g for t, g in pairs if t == label]
        return round(sum(1 for g in actual if g == label) / len(actual), 4) if actual else 1.0

    return {
        "accuracy": round(sum(1 for t, g in pairs if t == g) / len(pairs), 4),
        "unsubscribe_request_recall": recall("unsubscribe_request"),
        "out_of_office_precision": precision("out_of_office"),
        "interested_precision": precision("interested"),
    }
