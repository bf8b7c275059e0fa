"""Issue 25: the experiment's three kinds of rooms (training, validation, test), the Stage II options beyond the paper
(`fit3d.tune` through `fit3d.finetune`), and the candidates run of `fit3d.beyond` (the rule, a smoke run, resuming)."""
import json, shutil
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
    before = 0
    for f in files:
        r = json.loads(f.read_text())
        c = config_from(r["config"])
        if "test_scenes" not in r["config"]:                         # written before the split ...
            before += 1
            assert (c.test_scenes, c.val_scenes) == (r["config"]["val_scenes"], 0)   # ... their held-out rooms were tests
        else: assert (c.test_scenes, c.val_scenes) == (r["config"]["test_scenes"], r["config"]["val_scenes"])
        assert "| original |" in experiment_table(r)
    assert before, "no record from before the split left to read"


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


# ---------------------------------------------------------------------------------------------------------------
# the candidates run: the rule, a smoke run that chooses on validation rooms and resumes, and what it takes over

from fit3d.beyond import adopt_units, pick_winner, run_beyond


def rows(original, alone, combined) -> dict:
    "(mIoU, RMSE, recall@10) of the original, fine-tuned and combined rows, as a seed's results table."
    row = lambda m: dict(segmentation=dict(mIoU=m[0]), depth=dict(rmse=m[1]), correspondence={"recall@10": m[2]})
    return dict(original=row(original), duplicated=row(original), finetuned=row(alone), combined=row(combined))


def test_the_winner_rule_on_a_made_up_record():
    o = (0.50, 0.70, 0.30)
    val = dict(fit3d=rows(o, (0.49, 0.72, 0.35), (0.52, 0.66, 0.34)),   # alone: worse segmentation and depth
               a=rows(o, (0.51, 0.69, 0.31), (0.515, 0.68, 0.31)),      # qualifies
               b=rows(o, (0.52, 0.68, 0.33), (0.53, 0.66, 0.33)),       # qualifies, with the better combined row
               c=rows(o, (0.53, 0.65, 0.29), (0.56, 0.60, 0.40)),       # best combined, but recall alone worse
               d=rows(o, (0.500004, 0.699996, 0.300004), (0.6, 0.5, 0.5)))   # "better" below the printed decimals
    sel = pick_winner(val)
    assert (sel["winner"], sel["reported"]) == ("b", "b")
    assert sel["candidates"]["c"]["beats"] == ["segmentation/mIoU", "depth/rmse"] and sel["candidates"]["d"]["beats"] == []
    assert pick_winner(dict(a=val["a"], b2=val["b"], b=val["b"]))["winner"] == "b2"   # ties: the earlier candidate
    none = pick_winner(dict(fit3d=val["fit3d"], c=val["c"], d=val["d"]))
    assert (none["winner"], none["reported"]) == (None, "c")   # the best attempt: most columns beaten


def stamps(folder: Path) -> dict:
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def test_candidates_are_chosen_on_validation_rooms_then_measured_on_test_rooms_and_the_run_resumes(tmp_path):
    out = tmp_path / "run"
    cfg = ExperimentConfig(out=str(out), data=str(tmp_path / "data"), smoke=True, backbone="tiny", device="cpu",
                           candidates=("ema", "mine:preserve=0.5,epochs=2"), seeds=(0,), lift_iterations=20,
                           finetune_epochs=1, probe_iters=10)
    # 1. a box with no time in it, on a clock that stands still: Stage I and the unit after it run, the rest waits
    run_beyond(replace(cfg, max_seconds=1e-9), clock=lambda: 0.0)
    saved = json.loads((out / "beyond.json").read_text())
    assert saved["done"] == ["Stage I", "validation fit3d"] and saved["selection"] is None and not saved["test"]
    assert saved["skipped"][:2] == ["validation ema", "validation mine"]
    lifted = {p.name for p in (out / "fast" / "lift").iterdir()}
    assert lifted == set(saved["split"]["train"])   # Stage I saw the training rooms, and only them
    kept = stamps(out / "fast" / "seed0")

    # 2. the rest: what is done is reused; every candidate on the validation rooms, then the test rooms
    res = run_beyond(cfg)
    assert stamps(out / "fast" / "seed0").items() >= kept.items()   # the recipe's Stage II and probes, untouched
    assert "Stage I" not in res["done"] and res["times"].get("lift") is None   # reused: it sizes no later Stage I
    assert list(res["validation"]) == ["fit3d", "ema", "mine"] and res["selection"]["reported"] in res["validation"]
    report = {"fit3d", res["selection"]["reported"]}
    assert set(res["test"]) == report and all(set(s) == {"seed0"} for s in res["test"].values())
    assert res["candidates"]["mine"]["settings"] == dict(preserve=0.5, epochs=2)
    ft = json.loads((out / "fast" / "mine" / "seed0" / "finetune" / "config.json").read_text())
    assert (ft["preserve"], ft["epochs"], ft["lr"]) == (0.5, 2, cfg.finetune_lr)   # its settings over the recipe's
    for c in ("fit3d", "ema", "mine"):   # measured on the validation rooms: the original rows as well
        v = res["validation"][c]
        assert v["original"] == res["validation"]["fit3d"]["original"]
        assert v["original"] != res["test"]["fit3d"]["seed0"]["original"]   # other rooms, other numbers
    probe = json.loads((out / "fast" / "mine" / "seed0" / "validation-probe.json").read_text())
    assert probe["_key"]["rooms"]["val"] == saved["split"]["validation"]
    assert "| fit3d |" in (out / "beyond.md").read_text()

    # 3. on another machine, from beyond.json alone: every unit is taken over, nothing runs (not even Stage I)
    for p in out.iterdir():
        if p.name != "beyond.json": shutil.rmtree(p) if p.is_dir() else p.unlink()
    again = run_beyond(cfg)
    assert again["done"] == [] and again["validation"] == res["validation"] and again["test"] == res["test"]
    assert not (out / "fast").exists()


def test_only_units_of_the_same_settings_are_taken_over():
    cfg = ExperimentConfig(backbone="tiny", device="cpu", variants=("fast",), candidates=("ema",))
    prev = dict(config=asdict(cfg), backbone=dict(weights="w"), lift=dict(x=1),
                split=dict(validation=["valid_000"], test=["val_000"]),
                candidates=dict(fit3d=dict(settings={}), ema=dict(settings=dict(ema=0.999))),
                validation=dict(fit3d=dict(r=1), ema=dict(r=2)), test=dict(fit3d=dict(seed0=dict(r=3), seed5=dict(r=4))))
    fresh = lambda c=cfg, **kw: dict(dict(backbone=dict(weights="w"), lift=dict(x=1), validation={}, test={},
                                          split=dict(validation=["valid_000"], test=["val_000"]),
                                          candidates=dict(fit3d=dict(settings={}), ema=dict(settings=dict(ema=0.999)))), **kw)
    res = fresh()
    assert adopt_units(res, prev, cfg) == ["validation fit3d", "validation ema", "test fit3d seed0"]   # seed 5: not asked
    res = fresh(candidates=dict(fit3d=dict(settings={}), ema=dict(settings=dict(ema=0.99))))   # "ema" changed
    assert adopt_units(res, prev, cfg) == ["validation fit3d", "test fit3d seed0"]
    for other in (fresh(lift=dict(x=2)), fresh(split=dict(validation=["valid_000", "valid_001"], test=["val_000"]))):
        assert adopt_units(other, prev, cfg) == []   # another Stage I, other validation rooms
    assert adopt_units(fresh(), prev, replace(cfg, finetune_lr=1e-4)) == []
    assert adopt_units(fresh(), prev, replace(cfg, select_seed=1)) == []
    assert adopt_units(fresh(), prev, replace(cfg, seeds=(0,), max_seconds=9.0)) != []   # what a run does, not measures


def test_fit3d_test_rows_come_from_an_experiment_of_the_same_settings_and_only_then():
    from fit3d.beyond import adopt_experiment
    cfg = ExperimentConfig(backbone="tiny", device="cpu", variants=("fast",), candidates=("ema",), seeds=(0, 1))
    rec = dict(config=asdict(replace(cfg, candidates=(), max_seconds=5.0)), backbone=dict(weights="w"),
               variants=dict(fast=dict(lift=dict(x=1))), split=dict(test=["val_000"]),
               runs=dict(fast=dict(seed0=dict(r=0), seed1=dict(r=1), seed7=dict(r=7))),
               times=dict(lift=dict(fast=9.0), finetune=dict(fast=dict(seed0=2.0)), probes=dict(fast=dict(seed0=3.0))))
    fresh = lambda **kw: dict(dict(backbone=dict(weights="w"), lift=dict(x=1), split=dict(test=["val_000"]), test={},
                                   times=dict(test={})), **kw)
    res = fresh()
    assert adopt_experiment(res, rec, cfg) == ["test fit3d seed0", "test fit3d seed1"]   # seed 7: not asked
    assert res["test"]["fit3d"] == dict(seed0=dict(r=0), seed1=dict(r=1))
    assert res["times"]["test"] == {"fit3d seed0": dict(finetune=2.0, probes=3.0)}   # seed1's times: not recorded
    have = fresh(test=dict(fit3d=dict(seed0=dict(r="mine"))))
    assert adopt_experiment(have, rec, cfg) == ["test fit3d seed1"] and have["test"]["fit3d"]["seed0"] == dict(r="mine")
    for other in (fresh(backbone=dict(weights="v")), fresh(lift=dict(x=2)), fresh(split=dict(test=["val_001"]))):
        assert adopt_experiment(other, rec, cfg) == []   # other weights, another Stage I, other test rooms
    assert adopt_experiment(fresh(), rec, replace(cfg, finetune_lr=1e-4)) == []
    assert adopt_experiment(fresh(), dict(rec, config=asdict(replace(cfg, backbone="fit3d_tiny"))), cfg) == []
    rec2 = dict(rec, earlier=[dict(times=dict(finetune=dict(fast=dict(seed1=5.0))))])   # seed 1 timed by an earlier call
    assert adopt_experiment(res := fresh(), rec2, cfg) and res["times"]["test"]["fit3d seed1"] == dict(finetune=5.0)


def test_a_beyond_run_takes_fit3d_test_rows_from_the_experiment_json_alone(tmp_path):
    from fit3d.experiment import run_experiment
    cfg = ExperimentConfig(out=str(tmp_path / "a"), data=str(tmp_path / "data"), smoke=True, backbone="tiny",
                           device="cpu", variants=("fast",), seeds=(0,), lift_iterations=20, finetune_epochs=1,
                           probe_iters=10)
    exp = run_experiment(cfg)
    (tmp_path / "b").mkdir(); shutil.copy(tmp_path / "a" / "experiment.json", tmp_path / "b")   # the JSON alone
    res = run_beyond(replace(cfg, out=str(tmp_path / "b"), candidates=("ema",)))
    assert res["from_experiment"] == ["test fit3d seed0"] and "test fit3d seed0" not in res["done"]
    assert res["test"]["fit3d"]["seed0"] == exp["runs"]["fast"]["seed0"]
    assert "not measured again" in (tmp_path / "b" / "beyond.md").read_text()
    again = run_beyond(replace(cfg, out=str(tmp_path / "b"), candidates=("ema",)))   # resumed: still said
    assert again["done"] == [] and again["from_experiment"] == ["test fit3d seed0"]
    assert "not measured again" in (tmp_path / "b" / "beyond.md").read_text()
