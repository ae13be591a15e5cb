"""Rebuild the reply model's training data from the labeled corpus.

    python -m outreach.events.classify_train [--check]

Each reply of the files in ``TRAINING`` (outreach/events/tests/replies/) goes the way a mail
read over IMAP goes (MIME parsing, the visible reply split from quoted history and signature)
and its visible text is written with its label to ``classify_training.txt``, which ships with
the package and from which the model is trained at first use. ``--check`` exits 1 when the
shipped file is not what the corpus gives.

The list is explicit: a corpus file added later (a new blind set) is not trained on until it
is named here, so that it can first be scored as wording the model has never seen.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from outreach.events.classify_model import TRAINING_DATA
from outreach.events.mailcontent import read_content

TRAINING = (
    "corpus.txt",
    "holdout.txt",
    "holdout2.txt",
    "holdout3.txt",
    "fresh1.txt",
    "fresh2.txt",
    "fresh3.txt",
    "fresh4.txt",
    "fresh5.txt",
    "fresh6.txt",
    "fresh7.txt",
    "fresh8.txt",
)


def corpus_dir() -> Path:
    from outreach.events.tests import replies  # the labeled corpus and its reader

    return replies.CORPUS.parent


def examples_of(path: Path) -> list[tuple[str, str]]:
    """(visible text, label) of each reply of one corpus file, in file order."""
    from outreach.events.tests import replies

    out = []
    for sample in replies.load(path):
        content = read_content(sample.raw)
        out.append((content.visible.strip() or content.text.strip(), sample.label))
    return out


def render(files: tuple[str, ...] = TRAINING) -> str:
    lines = ["# set\tlabel\ttext: rebuilt by `python -m outreach.events.classify_train`"]
    for name in files:
        for text, label in examples_of(corpus_dir() / name):
            lines.append(f"{name}\t{label}\t{json.dumps(text, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "outreach.settings")
    import django

    django.setup()
    text = render()
    if args.check:
        same = TRAINING_DATA.read_text(encoding="utf-8") == text
        print(f"{TRAINING_DATA.name}: {'up to date' if same else 'differs from the corpus'}")
        return 0 if same else 1
    TRAINING_DATA.write_text(text, encoding="utf-8")
    print(f"{TRAINING_DATA.name}: {text.count(chr(10)) - 1} replies from {len(TRAINING)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
