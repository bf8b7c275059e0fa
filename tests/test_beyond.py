"""Issue 25: the experiment's three kinds of rooms (training, validation, test), the Stage II options beyond the paper
(`fit3d.tune` through `fit3d.finetune`), and the candidates run of `fit3d.beyond` (the rule, a smoke run, resuming)."""
import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from fit3d.experiment import (ExperimentConfig, config_from, experiment_table, make_rooms, probe_data, room_seed)

DATA = Path(__file__).resolve().parents[1] / "nbs" / "data"


@pytest.fixture(autouse=True)
def one_thread():
    "One CPU thread: two threads on a busy two-core machine crawl."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---------------------------------------------------------------------------------------------------------------
# the three kinds of rooms

def test_records_from_before_the_split_still_load_and_format():
    files = sorted(DATA.glob("experiment*.json"))
    assert files
    for f in files:
        r = json.loads(f.read_text())
        c = config_from(r["config"])
        assert "test_scenes" not in r["config"]                     # written before the split ...
        assert (c.test_scenes, c.val_scenes) == (r["config"]["val_scenes"], 0)   # ... their held-out rooms were tests
        assert "| original |" in experiment_table(r)


def test_no_validation_or_test_room_reaches_training(tmp_path):
    cfg = ExperimentConfig(data=str(tmp_path / "data"), device="cpu", train_scenes=2, val_scenes=2, test_scenes=1,
                           views=8, width=32, height=24)
    rooms = make_rooms(cfg)
    assert [len(rooms[k]) for k in ("train", "validation", "test")] == [2, 2, 1]
    seeds = {k: {room_seed(p) for p in v} for k, v in rooms.items()}   # a room is its seed
    assert sum(map(len, seeds.values())) == 5 and len(set.union(*seeds.values())) == 5
    names = {k: {p.name for p in v} for k, v in rooms.items()}
    # what the probes train on is the training rooms, whatever they are measured on
    val = probe_data(cfg, "validation")
    room_of = lambda samples: {samples.load(it)["name"].split("/")[0] for it in samples.items}
    assert room_of(val["train"]) == names["train"] and room_of(val["val"]) == names["validation"]
    assert {Path(p).name for p in val["scenes"]} == names["validation"]
    assert probe_data(cfg, "test") == cfg.data   # the test rooms: the benchmark itself, as before the split
    with pytest.raises(ValueError, match="validation"): probe_data(cfg, "train")
