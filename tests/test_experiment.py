"""`fit3d experiment` at smoke size on the CPU: the time box, Stage I in worker processes, every row/variant/seed in
experiment.json with mean and std computed from the per-seed results, and a second run that reuses everything."""
import json, os, shutil, subprocess, sys, time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from fit3d.demo import MODELS
from fit3d.protocol import _metric
from conftest import stop_when
from fit3d.experiment import (ExperimentConfig, METRICS, adopt_recorded, aside_path, lift_config, run_experiment,
                              seconds_needed, spawn_lift_workers, timed_units, unit_seconds)

# `--smoke` sizes (2 + 1 rooms of 8 views at 96x72), two variants, two seeds, two Stage I workers, fewer steps
SMOKE = dict(smoke=True, backbone="tiny", device="cpu", variants=("fast", "coupled"), seeds=(0, 1), lift_workers=2,
             lift_iterations=20, finetune_epochs=1, probe_iters=10)
FLAGS = ["--smoke", "--backbone", "tiny", "--device", "cpu", "--variants", "fast", "coupled", "--seeds", "0", "1",
         "--lift-workers", "2", "--lift-iterations", "20", "--finetune-epochs", "1", "--probe-iters", "10"]


@pytest.fixture(autouse=True)
def one_thread():
    "One CPU thread, as the subprocesses (OMP_NUM_THREADS=1): two threads on a busy two-core machine crawl."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def stamps(folder: Path) -> dict:
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith("experiment.") and "workers" not in p.parts}


def test_experiment_time_box_workers_aggregates_and_resume(tmp_path):
    out = tmp_path / "run"
    cfg = ExperimentConfig(out=str(out), data=str(tmp_path / "data"), **SMOKE)
    # 1. a time box with no time in it, on a clock that stands still: a unit of a kind not yet timed starts, one that
    # would end past the box by the longest unit of its kind timed so far does not (seed 1 after seed 0, Stage I of
    # coupled after that of fast), and the seeds of a skipped Stage I are skipped with it; cleanly
    run_experiment(replace(cfg, max_seconds=1e-9), clock=lambda: 0.0)
    saved = json.loads((out / "experiment.json").read_text())
    assert saved["done"] == ["Stage I fast", "fast seed 0"]
    assert saved["skipped"] == ["fast seed 1", "Stage I coupled", "coupled seed 0", "coupled seed 1"]
    assert list(saved["runs"]) == ["fast"] and list(saved["runs"]["fast"]) == ["seed0"]
    assert "skipped by the time box" in (out / "experiment.md").read_text()
    for i in (0, 1):  # Stage I ran in two worker processes, one room each, with a log each
        assert "worker %d of 2: done" % i in (out / "fast" / "workers" / f"rank{i}.log").read_text()
    assert len(list((out / "fast" / "targets").glob("*.safetensors"))) == 2

    # 2. the rest, without a box: Stage I of "fast" and its first seed are reused
    lifted = stamps(out / "fast" / "lift") | stamps(out / "fast" / "seed0")
    res = run_experiment(cfg)
    assert stamps(out / "fast" / "lift") | stamps(out / "fast" / "seed0") == lifted
    saved = json.loads((out / "experiment.json").read_text())
    assert saved["skipped"] == [] and saved["done"][-1] == "coupled seed 1" and list(res["runs"]) == ["fast", "coupled"]
    assert set(saved["runs"]) == {"fast", "coupled"}
    for v in ("fast", "coupled"):
        assert set(saved["runs"][v]) == {"seed0", "seed1"}
        assert all(set(r) == set(MODELS) for r in saved["runs"][v].values())
        timed = [x["times"] for x in saved["earlier"]] + [saved["times"]]   # seed 0 of fast: timed by the first run
        assert {s for x in timed for s in x["finetune"].get(v, {})} == {"seed0", "seed1"} and saved["times"]["lift"][v] >= 0
        for row in MODELS:  # mean and sample std over the seeds, from the per-seed results
            for g, k, *_ in METRICS:
                vals = [_metric(saved["runs"][v][s][row], g, k) for s in ("seed0", "seed1")]
                agg = saved["aggregate"][v][row][f"{g}/{k}"]
                assert np.isclose(agg["mean"], np.mean(vals)) and np.isclose(agg["std"], np.std(vals, ddof=1)), (v, row, k)
        gain = [_metric(saved["runs"][v][s]["combined"], "segmentation", "mIoU") -
                _metric(saved["runs"][v][s]["original"], "segmentation", "mIoU") for s in ("seed0", "seed1")]
        assert np.isclose(saved["aggregate"][v]["gain"]["segmentation/mIoU"]["mean"], np.mean(gain))
    # the original and duplicated rows do not depend on the variant: probed once per seed, shared
    for s in ("seed0", "seed1"):
        assert saved["runs"]["fast"][s]["original"] == saved["runs"]["coupled"][s]["original"]
        assert saved["runs"]["fast"][s]["finetuned"] != saved["runs"]["coupled"][s]["finetuned"]
    assert saved["runs"]["fast"]["seed0"]["finetuned"] != saved["runs"]["fast"]["seed1"]["finetuned"]
    assert saved["config"]["seeds"] == [0, 1] and saved["variants"]["coupled"]["lift"]["feature_grad_geometry"]
    assert not saved["variants"]["fast"]["lift"]["feature_grad_geometry"]

    # 3. the same command again, through the CLI, with only experiment.json and the probe records left (as when the
    # run goes on on another machine): every seed is taken from the record, nothing made again
    import shutil
    for v in ("fast", "coupled"): shutil.rmtree(out / v)
    before = stamps(out)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "fit3d.experiment", "--out", str(out), "--data", str(tmp_path / "data"),
                        *FLAGS], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "| combined (FiT3D) |" in r.stdout and stamps(out) == before
    again = json.loads((out / "experiment.json").read_text())
    assert again["runs"] == saved["runs"] and again["done"] == [] and not (out / "fast").exists()
    assert again["variants"]["fast"]["lift_metrics"] == saved["variants"]["fast"]["lift_metrics"]


def test_a_failing_lift_worker_fails_the_command_with_its_log(tmp_path):
    spec = dict(config=asdict(ExperimentConfig(out=str(tmp_path), backbone="tiny", device="cpu")), variant="fast",
                scenes=[str(tmp_path / "no_such_room")])
    with pytest.raises(RuntimeError, match=r"worker 0 of 1 \(fast\) failed(.|\n)*no_such_room"):
        spawn_lift_workers(spec, tmp_path / "workers", 1)


def test_recorded_seeds_are_taken_over_only_with_the_same_settings():
    cfg = ExperimentConfig(backbone="tiny", device="cpu", variants=("coupled",))
    lift = json.loads(json.dumps(asdict(lift_config("fast", cfg))))
    prev = dict(config=asdict(replace(cfg, variants=("fast",), seeds=(0,), max_seconds=5.0)), backbone=dict(weights="w1"),
                variants=dict(fast=dict(note="n", lift=lift, lift_metrics=dict(psnr=1), seed_lifts=dict(seed0=dict(psnr=1)))),
                runs=dict(fast=dict(seed0=dict(x=1))))
    fresh = lambda: dict(backbone=dict(weights="w1"), variants=dict(coupled=dict(note="c")), runs={})
    res = fresh()   # the same measuring settings, another run plan: taken over, in the tables' order
    assert adopt_recorded(res, prev, cfg) == ["fast seed0"]
    assert list(res["variants"]) == ["fast", "coupled"] and res["runs"] == dict(fast=dict(seed0=dict(x=1)))
    assert res["variants"]["fast"]["seed_lifts"] == dict(seed0=dict(psnr=1))
    for other in (replace(cfg, finetune_lr=1e-4), replace(cfg, lift_iterations=7), replace(cfg, device="cuda")):
        res = fresh()   # a setting that changes the results: nothing is taken over
        assert adopt_recorded(res, prev, other) == [] and res == fresh()
    res = fresh(); res["backbone"]["weights"] = "w2"   # other weights (a proxy trained again)
    assert adopt_recorded(res, prev, cfg) == []
    changed = json.loads(json.dumps(prev)); changed["variants"]["fast"]["lift"]["iterations"] += 1   # a preset since changed
    assert adopt_recorded(fresh(), changed, cfg) == []


def test_a_stage_i_run_again_is_followed_by_its_seed_and_other_records_are_set_aside(tmp_path):
    out, data = tmp_path / "run", tmp_path / "data"
    cfg = ExperimentConfig(out=str(out), data=str(data), **(SMOKE | dict(variants=("fast",), seeds=(0,))))
    run_experiment(cfg)                      # seed 0, timed
    shutil.rmtree(out / "fast")              # as on another machine: only experiment.json is left
    lifted = lambda: len(list((out / "fast" / "targets").glob("*.safetensors"))) == 2
    # a box with room for a Stage I and a seed, then a clock past it once Stage I is done: seed 1 runs all the same
    run_experiment(replace(cfg, seeds=(0, 1), max_seconds=1e5), clock=lambda: 1e6 if lifted() else 0.0)
    saved = json.loads((out / "experiment.json").read_text())
    assert saved["done"] == ["Stage I fast", "fast seed 1"] and set(saved["runs"]["fast"]) == {"seed0", "seed1"}
    assert set(saved["variants"]["fast"]["seed_lifts"]) == {"seed0", "seed1"}
    # other measuring settings: nothing is taken over (nor its times: with none, seed 0 runs again, then the box is
    # past), and the old record is kept aside, not overwritten
    run_experiment(replace(cfg, seeds=(0, 1), finetune_lr=1e-4, max_seconds=1e-9), clock=lambda: 0.0)
    aside, new = (json.loads((out / f"experiment{x}.json").read_text()) for x in (".set-aside-1", ""))
    assert aside["runs"] == saved["runs"] and new["done"] == ["Stage I fast", "fast seed 0"]
    assert list(new["runs"]["fast"]) == ["seed0"] and new["runs"]["fast"]["seed0"] != saved["runs"]["fast"]["seed0"]


def test_unit_seconds_sums_a_seed_s_parts():
    times = dict(lift=dict(fast=10.0), finetune=dict(fast=dict(seed0=2.0, seed1=3.0)),
                 probes=dict(fast=dict(seed0=1.0, seed1=1.5)), probes_original=dict(fast=dict(seed0=4.0)))
    assert unit_seconds([dict(times=times), dict(times=None), {}]) == dict(lift=[10.0], seed=[7.0, 4.5])


def test_the_time_box_reserves_a_seed_after_each_stage_i_and_lets_its_first_seed_run():
    known = dict(lift=[200.0, 240.0], seed=[100.0, 160.0])
    assert seconds_needed(None, known, False) == 240.0 + 160.0   # a Stage I, and one seed after it
    assert seconds_needed(1, known, False) == 160.0             # another seed
    assert seconds_needed(2, known, True) is None               # the first seed after this run's Stage I: it runs
    assert seconds_needed(None, dict(lift=[], seed=[]), False) == 0.0   # nothing timed yet: start


def test_the_time_box_goes_by_the_newest_run_that_timed_each_kind():
    seed = lambda v, ft, pr: dict(finetune={v: dict(seed0=ft)}, probes={v: dict(seed0=pr)})
    oldest = dict(times=dict(lift=dict(fast=230.0), **seed("fast", 26.0, 177.0)))   # before the probes got faster
    newer = dict(times=dict(lift=dict(reference=204.0), **seed("reference", 29.0, 43.5)))
    res = dict(earlier=[oldest, newer, dict(times=None)], times=dict(lift={}, finetune={}, probes={}))
    assert timed_units(res) == dict(lift=[204.0], seed=[72.5])    # the newest earlier run, not the slowest one
    res["times"]["lift"]["coupled"] = 196.0
    assert timed_units(res) == dict(lift=[196.0], seed=[72.5])    # this run's own Stage I, an earlier run's seed
    res["times"].update(seed("coupled", 25.6, 42.4))
    assert timed_units(res) == dict(lift=[196.0], seed=[68.0])
    assert timed_units(dict(times=None)) == dict(lift=[], seed=[])


def test_the_table_follows_variants_order_and_says_when_seeds_used_different_stage_i_runs():
    from fit3d.experiment import experiment_table
    res = json.loads((Path(__file__).parents[1] / "nbs/data/experiment.json").read_text())   # a real GPU record
    res["variants"] = dict(sorted(res["variants"].items(), reverse=True))   # reference, fast, coupled
    text = experiment_table(res)
    assert text.index("**fast**") < text.index("**coupled**") < text.index("**reference**")
    assert "Stage II: 2 epochs at learning rate 0.0001; probes: 1000 AdamW steps." in text   # what made the rows
    assert "Control check FAILED" in text   # 1,000 fixed steps: the record's duplicated control beats its original
    lifts = lambda *c: {f"seed{k}": dict(feature_cosine=dict(mean=x)) for k, x in enumerate(c)}
    block = lambda t: t.split("**fast**")[1].split("**coupled**")[0]
    for v in res["variants"].values(): v["seed_lifts"] = lifts(0.78, 0.78, 0.78)   # one Stage I run for all seeds
    assert "different calls" not in experiment_table(res)
    res["variants"]["fast"]["seed_lifts"] = lifts(0.78, 0.79, 0.78)
    assert "seed0 0.7800, seed1 0.7900, seed2 0.7800)" in block(experiment_table(res))
    res["variants"]["fast"]["seed_lifts"] = {"seed2": dict(feature_cosine=dict(mean=0.78))}   # 0, 1 from before
    assert "seed2 0.7800; seed0, seed1 not recorded)" in block(experiment_table(res))


def test_an_unreadable_record_is_kept_aside_each_time_never_overwritten(tmp_path):
    import itertools
    out, data = tmp_path / "run", tmp_path / "data"
    cfg = ExperimentConfig(out=str(out), data=str(data), **(SMOKE | dict(variants=("fast",), seeds=(0,))))
    for k, junk in enumerate(("{not json", "[1, 2]", '{"runs": [1]}'), 1):   # not JSON, then not a record
        out.mkdir(exist_ok=True); (out / "experiment.json").write_text(junk)
        tick = itertools.count()   # every unit starts past the box: only the set-up runs
        res = run_experiment(replace(cfg, max_seconds=1e-9), clock=lambda: next(tick))
        assert (out / f"experiment.unreadable-{k}.json").read_text() == junk and "earlier" not in res
        assert res["skipped"] == ["Stage I fast", "fast seed 0"]
    assert aside_path(out, "unreadable").name == "experiment.unreadable-4.json"


def test_a_run_stopped_in_stage_i_records_how_long_it_had_run(tmp_path):
    "`timeout`'s SIGTERM in Stage I: exit 143, and experiment.json says which unit was stopped and after how long."
    out, log = tmp_path / "run", tmp_path / "log"
    flags = ["--smoke", "--backbone", "tiny", "--device", "cpu", "--variants", "fast", "--seeds", "0",
             "--lift-workers", "1", "--lift-iterations", "2000"]
    rc = stop_when([sys.executable, "-m", "fit3d.experiment", "--out", str(out), "--data", str(tmp_path / "data"),
                    *flags], "Stage I fast", log, after=1.5)
    assert rc == 128 + 15, log.read_text()[-3000:]
    rec = json.loads((out / "experiment.json").read_text())
    assert list(rec["times"]["stopped_in"]) == ["Stage I fast"] and rec["times"]["stopped_in"]["Stage I fast"] >= 1.4
    assert rec["done"] == [] and rec["times"]["lift"] == {}


def test_module_entry_point_says_where_candidates_run():
    "`python -m fit3d.experiment --candidates ...` names the command that runs them (it used to reach the cli)."
    import pytest
    from fit3d.experiment import main
    with pytest.raises(SystemExit, match="fit3d experiment --candidates"):
        main(["--candidates", "ema"])


def test_solved_probes_of_the_original_rows_are_solved_once_and_only_correspondence_is_drawn_per_seed(tmp_path):
    from fit3d.demo import compare_models
    out = tmp_path / "run"
    cfg = ExperimentConfig(out=str(out), data=str(tmp_path / "data"), **(SMOKE | dict(variants=("fast",), lift_workers=1,
                   lift_iterations=4, probe_iters=None, train_scenes=1, val_scenes=0)))   # smaller: the solver is the cost
    saved = run_experiment(cfg)
    probe = out / "probe"
    assert (probe / "solved.json").exists() and not list(probe.glob("seed?.json"))
    assert {p.name for p in probe.glob("seed*-correspondence.json")} == {"seed0-correspondence.json",
                                                                         "seed1-correspondence.json"}
    runs = saved["runs"]["fast"]
    for row in ("original", "duplicated"):   # the same heads in every seed; the correspondence points are the seed's
        for g in ("segmentation", "depth"): assert runs["seed0"][row][g] == runs["seed1"][row][g]
        assert runs["seed0"][row]["correspondence"] != runs["seed1"][row]["correspondence"]
    # what the reuse stands on: solved heads do not depend on the seed (the solver starts from a fixed point)
    from fit3d.features import load_backbone
    from fit3d.probe import ProbeConfig
    from fit3d.protocol import FeatureSets, run_probes, toy_probe_samples
    bb, samples = load_backbone("tiny", device="cpu"), toy_probe_samples(6, seed=0)
    sets = FeatureSets(bb, compare_models(bb, bb)["finetuned"], "seg")
    by_seed = [run_probes(sets, samples[:4], samples[4:], ProbeConfig(seed=k, progress=False, device="cpu"), "quick",
                          n_classes=3) for k in (0, 1)]
    for row in sets.rows: assert by_seed[0][row] == by_seed[1][row], row
