"""Reply classification benchmark: per-label precision and recall, and accuracy, on the labeled
corpus of outreach/events/tests/replies/.

    .venv/bin/python bench/reply_classification.py [--json] [--corpus PATH ...]

Each reply goes the whole way a mail read over IMAP goes: MIME parsing, the split of the
visible reply from quoted history and signature, then the rules of outreach.events.classify.
Two baselines are measured in the same run:

- ``majority``: every reply gets the corpus's most frequent label;
- ``previous_reader``: what the IMAP reader knew before labels (unsubscribe subject, auto-reply
  headers and wording, delivery reports; everything else a plain reply, here ``other``).

Goals: recall of unsubscribe_request >= 0.98; precision of out_of_office and interested
>= 0.95; accuracy >= 0.90. Out-of-office return dates are scored on the replies whose label
names one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
GOALS = {
    "unsubscribe_request_recall": 0.98,
    "out_of_office_precision": 0.95,
    "interested_precision": 0.95,
    "accuracy": 0.90,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object")
    parser.add_argument("--corpus", type=Path, nargs="*", help="corpus files (default: all)")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "outreach.settings")
    import django

    django.setup()
    from outreach.events import inbox
    from outreach.events import normalize as n
    from outreach.events.classify import LABELS, classify_content
    from outreach.events.mailcontent import read_content
    from outreach.events.tests import replies

    paths = args.corpus or sorted(Path(replies.CORPUS).parent.glob("*.txt"))
    samples = [s for path in paths for s in replies.load(path)]
    truth = [s.label for s in samples]

    def ours(raw: bytes) -> str:
        content = read_content(raw)
        verdict = classify_content(
            content, received=replies.RECEIVED_DAY, own_addresses=(replies.POOL_ADDRESS,)
        )
        return verdict.label

    previous_map = {
        n.UNSUBSCRIBED: "unsubscribe_request",
        n.AUTO_REPLIED: "auto_reply",
        n.BOUNCED: "bounce",
        n.BLOCKED: "bounce",
        n.DEFERRED: "bounce",
    }

    def previous(raw: bytes) -> str:
        parsed = inbox.parse(raw, mailbox_address=replies.POOL_ADDRESS)
        kinds = [previous_map.get(e.type, "other") for e in parsed.events]
        if not kinds and parsed.sender.startswith(("mailer-daemon@", "postmaster@")):
            return "bounce"
        return kinds[0] if kinds else "other"

    majority_label = Counter(truth).most_common(1)[0][0]
    classifiers: dict[str, Callable[[bytes], str]] = {
        "rules": ours,
        "previous_reader": previous,
        "majority": lambda raw: majority_label,
    }
    results = {
        name: score(truth, [fn(s.raw) for s in samples], LABELS) for name, fn in classifiers.items()
    }
    # Return dates of out-of-office notices that give one.
    dated = [s for s in samples if s.return_date is not None]
    right = 0
    for sample in dated:
        content = read_content(sample.raw)
        verdict = classify_content(
            content, received=replies.RECEIVED_DAY, own_addresses=(replies.POOL_ADDRESS,)
        )
        right += verdict.return_date == sample.return_date
    rules = results["rules"]
    report = {
        "replies": len(samples),
        "languages": dict(Counter(s.language for s in samples)),
        "corpus": [str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in paths],
        "accuracy": rules["accuracy"],
        "labels": rules["labels"],
        "return_date_accuracy": round(right / len(dated), 4) if dated else None,
        "return_dates_scored": len(dated),
        "baselines": {k: v["accuracy"] for k, v in results.items() if k != "rules"},
        "accuracy_ratio_vs_previous_reader": ratio(rules["accuracy"], results["previous_reader"]),
        "accuracy_ratio_vs_majority": ratio(rules["accuracy"], results["majority"]),
    }
    figures = {
        "unsubscribe_request_recall": rules["labels"]["unsubscribe_request"]["recall"],
        "out_of_office_precision": rules["labels"]["out_of_office"]["precision"],
        "interested_precision": rules["labels"]["interested"]["precision"],
        "accuracy": rules["accuracy"],
    }
    report["goals"] = {
        key: {"goal": goal, "value": figures[key], "met": figures[key] >= goal}
        for key, goal in GOALS.items()
    }
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report, results)
    return 0


def ratio(value: float, baseline: dict[str, object]) -> float | None:
    base = float(baseline["accuracy"])  # type: ignore[arg-type]
    return round(value / base, 3) if base else None


def score(truth: list[str], guess: list[str], labels: tuple[str, ...]) -> dict[str, object]:
    per_label = {}
    for label in labels:
        tp = sum(1 for t, g in zip(truth, guess, strict=True) if t == g == label)
        predicted = sum(1 for g in guess if g == label)
        actual = sum(1 for t in truth if t == label)
        per_label[label] = {
            "precision": round(tp / predicted, 4) if predicted else 1.0,
            "recall": round(tp / actual, 4) if actual else 1.0,
            "support": actual,
            "predicted": predicted,
        }
    right = sum(1 for t, g in zip(truth, guess, strict=True) if t == g)
    return {"accuracy": round(right / len(truth), 4), "labels": per_label}


def print_table(report: dict[str, object], results: dict[str, dict[str, object]]) -> None:
    print(f"{report['replies']} replies, languages {report['languages']}")
    print(f"{'label':<22}{'precision':>10}{'recall':>8}{'support':>9}{'predicted':>11}")
    labels = report["labels"]
    assert isinstance(labels, dict)
    for label, row in labels.items():
        print(
            f"{label:<22}{row['precision']:>10.3f}{row['recall']:>8.3f}"
            f"{row['support']:>9}{row['predicted']:>11}"
        )
    print(f"accuracy {report['accuracy']:.3f}")
    for name, result in results.items():
        if name != "rules":
            print(f"  baseline {name}: accuracy {result['accuracy']:.3f}")
    print(f"accuracy ratio vs previous reader: {report['accuracy_ratio_vs_previous_reader']}")
    print(f"accuracy ratio vs majority label:  {report['accuracy_ratio_vs_majority']}")
    print(
        f"return dates right: {report['return_date_accuracy']} "
        f"of {report['return_dates_scored']} dated notices"
    )
    goals = report["goals"]
    assert isinstance(goals, dict)
    for key, goal in goals.items():
        mark = "met" if goal["met"] else "MISSED"
        print(f"goal {key} >= {goal['goal']}: {goal['value']:.3f} {mark}")


if __name__ == "__main__":
    sys.exit(main())
