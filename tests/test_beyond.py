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


# ---------------------------------------------------------------------------------------------------------------
# Stage II beyond the paper: each option changes what it should, and nothing else

import copy
from safetensors.torch import load_file
from fit3d.features import load_backbone
from fit3d.finetune import FinetuneConfig, TargetViews, finetune, masked_l1, run_record, train_step
from fit3d.testing import toy_targets
from fit3d.tune import EMA


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    return toy_targets(tmp_path_factory.mktemp("toy"))


def tune(targets, out, **kw) -> dict:
    "Fine-tune the tiny random ViT on the toy targets; the exported state dict."
    c = FinetuneConfig(**dict(targets=(str(targets),), out=str(out), backbone="tiny", pretrained=False, lr=1e-2,
                              epochs=1, num_workers=0, progress=False, device="cpu", save_every=0) | kw)
    return load_file(str(finetune(c)))


def original() -> dict:
    return {k: v.detach().clone() for k, v in load_backbone("tiny", pretrained=False, device="cpu").model.state_dict().items()}


@pytest.mark.parametrize("how, kw, tuned", [
    ("last", dict(tune="last", tune_blocks=1), lambda k: k.startswith(("blocks.3.", "norm."))),
    ("norms", dict(tune="norms"), lambda k: ".norm" in k or k.startswith("norm.")),
    ("lora", dict(tune="lora", lora_rank=2), lambda k: k.endswith("attn.qkv.weight")),
])
def test_frozen_weights_stay_bitwise_equal_and_tuned_ones_move(targets, tmp_path, how, kw, tuned):
    before, after = original(), tune(targets, tmp_path / how, **kw)
    assert set(after) == set(before)   # a plain timm state dict of the original architecture (LoRA merged)
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(tuned(k) for k in moved), sorted(moved)[:5]
    assert all(torch.equal(before[k], after[k]) for k in before if not tuned(k))
    if how == "lora": assert len(moved) == 4   # each of the 4 blocks' qkv weight, none of their biases


def test_the_exported_average_is_its_definition(targets, tmp_path):
    d, steps = 0.5, 3   # the tiny toy run: 6 views, batch 2, 3 steps an epoch
    raw = [original()] + [tune(targets, tmp_path / f"raw{k}", max_steps=k) for k in range(1, steps + 1)]
    ema = tune(targets, tmp_path / "ema", ema=d, max_steps=steps)
    for k in raw[0]:
        expected = raw[0][k].float()
        for w in raw[1:]: expected = d * expected + (1 - d) * w[k].float()
        torch.testing.assert_close(ema[k].float(), expected, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(ema[k], raw[-1][k]) for k in ema)   # not the raw weights


def test_a_stopped_run_with_an_average_and_lora_resumes_exactly(targets, tmp_path):
    kw = dict(ema=0.9, tune="lora", lora_rank=2, epochs=2, save_every=2)
    straight = tune(targets, tmp_path / "a", **kw)
    c = FinetuneConfig(targets=(str(targets),), out=str(tmp_path / "b"), backbone="tiny", pretrained=False, lr=1e-2,
                       num_workers=0, progress=False, device="cpu", **kw)
    def stop(step, loss):
        if step == 3: raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt): finetune(c, callback=stop)   # checkpoint at step 2
    resumed = load_file(str(finetune(c)))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_the_preservation_term_is_zero_when_the_model_is_the_original(targets):
    data = TargetViews.from_cache(targets)
    batch = data.to_device(torch.utils.data.default_collate([data[0], data[1]]), "cpu")
    batch["keep"] = torch.ones_like(batch["mask"])
    m = load_backbone("tiny", pretrained=False, device="cpu").train()
    step = lambda model, **kw: train_step(model, batch, torch.optim.SGD(model.parameters(), lr=0.0), **kw)[0]
    plain, kept = step(copy.deepcopy(m)), step(copy.deepcopy(m), original=copy.deepcopy(m).eval(), preserve=1.0)
    torch.testing.assert_close(kept, plain)   # the model is the original: the term adds nothing
    other = copy.deepcopy(m)
    with torch.no_grad(): other.model.blocks[0].mlp.fc1.weight.add_(0.5)
    with torch.no_grad(): gap = masked_l1(other(batch["image"]), m(batch["image"]), batch["keep"])
    torch.testing.assert_close(step(copy.deepcopy(other), original=m, preserve=0.3) - step(copy.deepcopy(other)),
                               0.3 * gap)
    # "unreliable": only where the target's rendered alpha is below 1 (the toy targets' first cell has alpha 0)
    from fit3d.tune import keep_weights
    w = keep_weights(batch, "unreliable")
    assert w.shape == batch["mask"].shape and w[0, 0, 0] == 1 and torch.equal(w, 1 - batch["alpha"])


def test_defaults_keep_the_records_of_runs_made_before_the_options(targets):
    data = TargetViews.from_cache(targets)
    conf = asdict(FinetuneConfig(backbone="tiny", pretrained=False)) | dict(amp="None")
    settings = lambda c: run_record(c, "w", data)["settings"]
    assert not {"tune", "ema", "preserve", "lora_rank", "tune_blocks", "preserve_where"} & set(settings(conf))
    assert settings(conf | dict(ema=0.99))["ema"] == 0.99
    assert run_record(conf | dict(ema=0.99), "w", data)["key"] != run_record(conf, "w", data)["key"]
