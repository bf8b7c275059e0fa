"`fit3d demo` end to end on tiny settings, through the console script: report written, re-run resumes, changed inputs recompute."
import json, os, subprocess, sys, time
import pytest
from pathlib import Path

TINY = ["--train-scenes", "2", "--val-scenes", "1", "--views", "8", "--width", "64", "--height", "48",
        "--finetune-epochs", "1", "--probe-iters", "20", "--device", "cpu", "--backbone", "tiny"]


def fit3d(*args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    exe = Path(sys.executable).parent / "fit3d"
    r = subprocess.run([str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def stamps(folder: Path) -> dict:
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def test_demo_end_to_end_resume_and_provenance(tmp_path):
    out, data = tmp_path / "run", tmp_path / "data"
    args = ("demo", "--out", str(out), "--data", str(data), *TINY)
    t = time.perf_counter()
    r = fit3d(*args, "--lift-iterations", "20", cwd=tmp_path)
    first = time.perf_counter() - t
    root = out / "tiny"                                  # runs are keyed by backbone
    report = (root / "report.html").read_text()
    assert "Linear probes" in report and "data:image/png;base64" in report and "fixed random initialisation" in report
    assert "original duplicated (control)" in report and "combined (FiT3D)" in report
    results = json.loads((root / "probe" / "results.json").read_text())
    assert set(results) == {"_key", "original", "duplicated", "finetuned", "combined"}
    for m in ("original", "duplicated", "finetuned", "combined"):
        assert 0 <= results[m]["segmentation"]["mIoU"] <= 1 and results[m]["depth"]["rmse"] > 0
    assert (root / "finetune" / "finetuned.safetensors").exists()
    lifted = sorted((root / "lift").iterdir())
    assert len(lifted) == 2 and all((d / "lift.json").exists() and (d / "provenance.json").exists() for d in lifted)
    before = stamps(root / "lift") | {Path("ft"): (root / "finetune" / "finetuned.safetensors").stat().st_mtime_ns}
    # a second run finds everything done: nothing is lifted, fine-tuned or probed again
    t = time.perf_counter()
    fit3d(*args, "--lift-iterations", "20", cwd=tmp_path)
    assert stamps(root / "lift") | {Path("ft"): (root / "finetune" / "finetuned.safetensors").stat().st_mtime_ns} == before
    assert time.perf_counter() - t < first
    # another Stage I setting: the lifts, targets and fine-tuned weights are made again, and say so
    r = fit3d(*args, "--lift-iterations", "21", cwd=tmp_path)
    assert "made from other inputs" in r.stdout + r.stderr
    assert all(json.loads((d / "lift.json").read_text())["steps"] == 21 for d in lifted)
    assert (root / "finetune" / "finetuned.safetensors").stat().st_mtime_ns != before[Path("ft")]
    # another backbone: its own folder; nothing of the first run is reused or touched
    kept = stamps(root)
    fit3d(*args, "--lift-iterations", "21", "--backbone", "tiny_noreg", cwd=tmp_path)
    other = out / "tiny_noreg"
    assert len(list((other / "lift").glob("*/lift.json"))) == 2 and (other / "targets").is_dir()
    assert json.loads((other / "lift" / lifted[0].name / "provenance.json").read_text())["backbone"] == "tiny_noreg"
    assert stamps(root) == kept


def test_lift_stage_refuses_scenes_that_share_a_name(tmp_path):
    "Two projects whose scenes have one name (every COLMAP project was 'sparse'): refused before any folder is touched."
    import pytest
    from fit3d.formats import write_nerfstudio
    from fit3d.testing import toy_scene
    from fit3d.demo import lift_stage
    from fit3d.features import load_backbone
    from fit3d.lift import LiftConfig
    from fit3d.scene import SceneError
    paths = []
    for proj in ("a", "b"):
        sc = toy_scene(tmp_path / proj / "sparse", n=2); sc.name = "sparse"
        write_nerfstudio(sc, tmp_path / proj / "sparse"); paths.append(tmp_path / proj / "sparse")
    done = tmp_path / "run" / "lift" / "sparse"; done.mkdir(parents=True); (done / "lift.json").write_text("{}")
    with pytest.raises(SceneError, match="share the names"):
        lift_stage(paths, tmp_path / "run", load_backbone("tiny", device="cpu"), None, LiftConfig.tiny(), "cpu")
    assert (done / "lift.json").exists()


def test_gpu_choice_falls_back_to_the_proxy(monkeypatch, tmp_path):
    "DINOv2 chosen automatically but its weights unreachable: the committed proxy, said plainly; chosen by hand: the error."
    import shutil
    from dataclasses import replace
    from fit3d.demo import DemoConfig, demo_backbone, resolve
    from fit3d.features import WeightsUnavailable, weights_dir
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = replace(resolve(DemoConfig(device="cpu")), backbone="dinov2_small", finetune_lr=1e-5)
    said = []
    bb, used = demo_backbone(cfg, (True, True), "cpu", log=said.append)   # the largest proxy, at the official rate
    assert bb.name == used.backbone == "fit3d_small" and used.finetune_lr == 1e-5
    assert "using the proxy model fit3d_small" in said[0]
    shutil.copy(weights_dir() / "fit3d_tiny.safetensors", tmp_path)     # only the ViT-Ti proxy installed
    monkeypatch.setenv("FIT3D_WEIGHTS", str(tmp_path))
    bb, used = demo_backbone(cfg, (True, True), "cpu", log=said.append)
    assert bb.name == used.backbone == "fit3d_tiny" and used.finetune_lr == 1e-4   # as its experiment ran
    assert "using the proxy model fit3d_tiny" in said[1]
    assert demo_backbone(cfg, (True, False), "cpu")[1].finetune_lr == 1e-5        # a rate given by hand is kept
    with pytest.raises(WeightsUnavailable): demo_backbone(cfg, (False, False), "cpu")
