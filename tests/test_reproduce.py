"`fit3d reproduce` end to end on a small ScanNet++-layout tree, through the console script: run, resume, dry run, recompute."
import json, os, subprocess, sys
from pathlib import Path

import pytest

from fit3d.reproduce import plan, ReproduceConfig, RATES, lift_step_seconds, lift_view_seconds, seg_step_seconds
from fit3d.synthetic import make_scannetpp_tree
from fit3d.lift import LiftConfig


def fit3d(*args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([str(Path(sys.executable).parent / "fit3d"), *map(str, args)], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout + r.stderr


def stamps(folder: Path) -> dict:
    "Modification times of every stage's files (config.json and the summary results.md are rewritten by every run)."
    return {p.relative_to(folder): p.stat().st_mtime_ns for s in ("lift", "targets", "finetune", "probe", "features")
            for p in sorted((folder / s).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sp") / "scannetpp"
    make_scannetpp_tree(root, n_train=2, n_val=1, views=6, width=48, height=36)
    return root


def test_plan_prices_every_stage(tree, tmp_path):
    cfg = ReproduceConfig(root=tree, out=tmp_path, backbone="tiny", datasets=("scannetpp", "kitti"), probe_iters=100)
    rows = {r["stage"]: r for r in plan(cfg)}
    assert list(rows) == ["Stage I: lift", "Stage II: fine-tune", "probes: scannetpp", "probes: kitti"]
    # as the reader gives it: the steps, then each of the 6 views' features and target
    assert rows["Stage I: lift"]["seconds"] == pytest.approx(2 * (30_000 * lift_step_seconds(LiftConfig(), 48, 36)
                                                                  + 6 * lift_view_seconds(LiftConfig(), 48, 36)))
    # ScanNet++'s evaluation is counted per held-out image (1 scene x 6 views, both tasks); KITTI's data is not here
    sp = rows["probes: scannetpp"]
    assert sp["seconds"] == pytest.approx(100 * (seg_step_seconds(100) + RATES["probe_depth_step"])   # 100 classes
                                          + 6 * (RATES["probe_seg_eval"] + RATES["probe_depth_eval"]))
    assert "eval 6 seg + 6 depth images" in sp["work"] and "not counted" in rows["probes: kitti"]["work"]
    # depth only, the four heads together (a step of all four is the measured rate)
    assert rows["probes: kitti"]["seconds"] == pytest.approx(100 * RATES["probe_depth_step"])
    with pytest.raises(SystemExit, match="split list does not exist"): plan(ReproduceConfig(root=tmp_path / "none"))


def test_reproduce_end_to_end_resume_and_recompute(tree, tmp_path):
    args = ["reproduce", "--root", tree, "--out", tmp_path / "runs", "--backbone", "tiny", "--downscale", "1",
            "--datasets", "scannetpp", "--protocol", "quick", "--probe-iters", "10", "--device", "cpu", "tiny"]
    dry = fit3d(*args, "--iterations", "20", "--dry-run", cwd=tmp_path)
    assert "2 of 2 scenes x 20 steps" in dry and not (tmp_path / "runs" / "tiny" / "lift").exists()
    out = fit3d(*args, "--iterations", "20", cwd=tmp_path)
    root = tmp_path / "runs" / "tiny"
    table = (root / "results.md").read_text()
    assert "## scannetpp" in table and "original duplicated (control)" in table and "fixed random initialisation" in table
    res = json.loads((root / "probe" / "scannetpp" / "results.json").read_text())
    assert set(res) == {"_key", "original", "duplicated", "finetuned", "combined"}
    assert {"segmentation", "depth"} <= set(res["combined"])
    lifted = sorted(p.parent for p in (root / "lift").glob("*/lift.json"))
    assert [p.name for p in lifted] == sorted(Path(l.strip()).name for l in (tree / "splits" / "nvs_sem_train.txt").read_text().split())
    assert len(list((root / "targets").glob("*.safetensors"))) == 2
    # the same command again: every stage is found by its record; nothing is written
    before = stamps(root)
    clock = json.loads((root / "timings.json").read_text())
    assert set(clock["stages"]) == {"Stage I: lift", "Stage II: fine-tune", "probes: scannetpp"}
    assert all(v["seconds"] > 0 and v["device"].startswith("cpu") and "estimate" in v for v in clock["stages"].values())
    again = fit3d(*args, "--iterations", "20", cwd=tmp_path)
    assert stamps(root) == before and again.count("done") >= 4
    assert json.loads((root / "timings.json").read_text()) == clock   # stages found done keep their measured times
    # another Stage I setting: lifts, targets, fine-tuning and probes are made again
    fit3d(*args, "--iterations", "21", cwd=tmp_path)
    assert all(json.loads((d / "lift.json").read_text())["steps"] == 21 for d in lifted)
    after = stamps(root)
    for f in ("finetune/finetuned.safetensors", "probe/scannetpp/results.json"): assert after[Path(f)] != before[Path(f)]


def test_batch_no_views_could_fill_stops_before_stage_one(tree, tmp_path):
    "A Stage II batch larger than all the training views (8 here) cannot run: the run stops before Stage I, not after."
    from fit3d.reproduce import reproduce
    cfg = ReproduceConfig(root=tree, out=tmp_path, backbone="tiny", batch_size=9, device="cpu", datasets=("scannetpp",),
                          lift=LiftConfig.tiny(iterations=5))
    with pytest.raises(ValueError, match="8 training views, fewer than Stage II's global batch 9"): reproduce(cfg)
    assert not list(tmp_path.rglob("lift*")) and not list(tmp_path.rglob("*.safetensors"))   # no stage ran
