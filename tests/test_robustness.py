"""A4 robustness: the smoke preset end to end, and the protocol's invariants."""

import pytest
from pydantic import ValidationError

import learnlab
from learnlab.studies import robustness as a4


def test_smoke_run_measures_every_intervention(tmp_path):
    summary = learnlab.run("robustness", preset="smoke", out=tmp_path / "r", progress=False)
    table = summary["table"]
    assert list(table) == ["a1-baseline", "a1-concept", "a2-gen0", "a2-gen2"]
    settings = ["clean"] + [f"int{b}_{s}" for b in (8, 6, 4, 3) for s in ("tensor", "channel")]
    settings += ["dropout10", "dropout20", "dropout30", "dropout50"]
    accuracies = [f"{t}_{s}" for t in ("hard", "easy") for s in settings]
    drops = [f"drop_{t}_{s}" for t in ("hard", "easy") for s in settings[1:]]
    for cells in table.values():
        assert list(cells) == accuracies + drops
        for metric in drops:
            test, setting = metric.removeprefix("drop_").split("_", 1)
            clean = cells[f"{test}_clean"]["values"]
            after = cells[f"{test}_{setting}"]["values"]
            assert cells[metric]["values"] == pytest.approx([a - c for a, c in zip(after, clean, strict=True)])
    # A2's generation 0 is A1's concept model trained again: every measurement agrees exactly
    assert table["a2-gen0"] == table["a1-concept"]
    assert len(summary["claims"]) == len(a4.CLAIMS)
    assert (tmp_path / "r" / "robustness.png").is_file()


def test_config_rejects_bad_widths_and_probabilities():
    for bad in ({"bits": [1]}, {"bits": [4, 4]}, {"dropout": [0.0]}, {"dropout": [0.125]}, {"arms": ["gen2"]}):
        with pytest.raises(ValidationError):
            a4.Config(**bad)
