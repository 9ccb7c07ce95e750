"""The embedded model's card states the numbers of its committed evaluation JSONs."""
from __future__ import annotations

import copy
import json
from pathlib import Path

from benchmarks import card_tables
from cmp.eval.real import is_real

ROOT = Path(__file__).resolve().parents[1]
CARD = ROOT / "checkpoints" / "cmp-slim-affinity.md"
EVAL = ROOT / "checkpoints" / "eval"


def test_the_card_shows_the_tables_of_the_committed_evaluation():
    """A new evaluation JSON without the card regenerated (or a hand-edited number) fails here:
    ``python -m benchmarks.card_tables`` prints what the card must say."""
    card = CARD.read_text()
    for table in card_tables.tables(EVAL):
        assert table in card, "model card out of step with checkpoints/eval/*.json; run python -m benchmarks.card_tables"


def test_every_row_says_real_exactly_when_the_set_is_real():
    seg, first, prop = card_tables.tables(EVAL)
    rows = [line.split(" | ") for line in (seg + "\n" + first + "\n" + prop).splitlines()
            if line.startswith("| ") and not line.startswith("| set |")]  # data rows, not the headers
    assert len(rows) >= 15
    for cells in rows:
        name = cells[0].lstrip("| ").split(" (")[0]
        assert cells[1].startswith("**real**") == is_real(name), cells[:2]


def test_the_tables_follow_the_json():
    report = json.loads((EVAL / "segmentation.json").read_text())
    before = card_tables.segmentation_table(report)
    changed = copy.deepcopy(report)
    changed["sets"]["emoji"]["methods"]["cmp, most confident of 3"]["NoC@85"] += 1
    after = card_tables.segmentation_table(changed)
    assert before != after and sum(a != b for a, b in zip(before.splitlines(), after.splitlines())) == 1


def test_the_first_click_table_follows_the_json():
    """Each candidate's IoU after one click, and which one the confidence chose, per set."""
    report = json.loads((EVAL / "segmentation.json").read_text())
    before = card_tables.first_click_table(report)
    changed = copy.deepcopy(report)
    changed["sets"]["motorcycle-whole"]["first_click"]["iou"]["group"] = 0.5
    after = card_tables.first_click_table(changed)
    diff = [b for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert len(diff) == 1 and diff[0].startswith("| motorcycle-whole (") and "| 0.500 |" in diff[0]
