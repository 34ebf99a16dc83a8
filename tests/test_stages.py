"""A run's state and history are typed records (edgetl.training.stages, edgetl.training.results):
what state.json and history.json hold reads back as it was written, and a damaged file is one
clear error, not a KeyError deep in a resumed run."""
from __future__ import annotations

import json

import pytest

from edgetl.errors import EdgetlError
from edgetl.training.results import Epoch
from edgetl.training.stages import RunState


def test_state_and_history_round_trip(tmp_path):
    state = RunState(stage=2, epoch=3, stage1_done=True, stage1_epochs=2, best_val_loss=0.25, best_epoch=2,
                     history=[Epoch(1, 0, 1.5, 0.9, 0.6, 0.8, 0.7, 0.75), Epoch(2, 3, 2.0, 0.3, 0.9, 0.25, 0.92)])
    state.save(tmp_path)
    back = RunState.load(tmp_path)
    assert back == state and back.history[1].val_auc is None and back.history[0].figure("val_auc") == 0.75
    saved = json.loads((tmp_path / "state.json").read_text())
    assert "val_auc" not in saved["history"][1]  # as Keras logs it: absent, not null
    with pytest.raises(KeyError):
        back.history[0].figure("epoch")  # a figure is a loss, an accuracy or an AUC


@pytest.mark.parametrize("history", [[{"stage": 1, "epoch": 0}], [{"stage": 1, "epoch": 0, "seconds": 1, "loss": "x",
                                                                    "accuracy": 1, "val_loss": 1, "val_accuracy": 1}]])
def test_a_damaged_history_is_one_clear_error(tmp_path, history):
    RunState().save(tmp_path)
    saved = json.loads((tmp_path / "state.json").read_text()) | {"history": history}
    (tmp_path / "state.json").write_text(json.dumps(saved))
    with pytest.raises(EdgetlError, match="the run's state is damaged"):
        RunState.load(tmp_path)
