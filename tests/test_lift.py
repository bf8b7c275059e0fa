"""Stage I safety on the CPU: a lift killed (SIGKILL) at random points resumes to the result of an uninterrupted run,
with densification on; bad or stale files are named; a non-finite loss stops before anything is written."""
import json, os, random, signal, subprocess, sys, textwrap, time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fit3d.formats import write_nerfstudio, read_scene
from fit3d.testing import toy_scene
from fit3d.lift import LiftConfig, lift, lift_scenes, load_lifted, save_lifted
from fit3d.scene import SceneError
from fit3d.store import ArtifactError, NonFiniteLoss

FEATS = """
def toy_features(scene, dim=8):
    W = torch.randn(dim, 3, generator=torch.Generator().manual_seed(0))
    return {c.name: torch.einsum("dc,chw->dhw", W, F.avg_pool2d(torch.from_numpy(scene.image(i)).permute(2, 0, 1)[None], 4)[0])
            for i, c in enumerate(scene.cameras)}
"""
exec(FEATS)
# densification on and acting: low growth threshold, refinement and opacity resets inside the 60 steps
CFG = "LiftConfig.tiny(iterations=60, feature_dim=8, checkpoint_every=4, refine_start=4, refine_stop=50, refine_every=4, " \
      "grow_grad2d=1e-7, reset_every=16, near_plane=0.01)"
CHILD = textwrap.dedent("""
    import sys, torch, torch.nn.functional as F
    from fit3d.formats import read_scene
    from fit3d.lift import LiftConfig, lift, save_lifted
    torch.set_num_threads(1)
    """) + FEATS + textwrap.dedent(f"""
    scene, out = read_scene(sys.argv[1]), sys.argv[2]
    cfg = {CFG}
    lifted = lift(scene, toy_features(scene), cfg, out_dir=out, progress=False,
                  callback=lambda step, splats: print("step", step, len(splats["means"]), flush=True))
    save_lifted(lifted, out)
    print("done", flush=True)
    """)


@pytest.fixture
def scene_dir(tmp_path):
    s = toy_scene(tmp_path / "src", n=5, width=32, height=24); s.name = "toy"
    write_nerfstudio(s, tmp_path / "scene")
    return tmp_path / "scene"


def _run(script, scene_dir, out, kill_at=None):
    "Run the child; SIGKILL it once it reports step `kill_at`. Returns (finished, last step seen)."
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).parents[1]))
    p = subprocess.Popen([sys.executable, str(script), str(scene_dir), str(out)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    last = None
    for line in p.stdout:
        if line.startswith("step"): last = int(line.split()[1])
        if kill_at is not None and last is not None and last >= kill_at:
            os.kill(p.pid, signal.SIGKILL); break
    p.wait(timeout=300)
    if kill_at is None: assert p.returncode == 0, p.stderr.read()[-3000:]
    return p.returncode == 0, last


def test_killed_lift_resumes_to_the_uninterrupted_result(tmp_path, scene_dir):
    script = tmp_path / "child.py"; script.write_text(CHILD)
    assert _run(script, scene_dir, tmp_path / "whole")[0]
    whole = load_lifted(tmp_path / "whole")
    rng, out, kills = random.Random(0), tmp_path / "killed", 0
    while kills < 3:
        _, last = _run(script, scene_dir, out, kill_at=rng.randint(2, 55))
        assert last is not None and not (out / "lift.json").exists()
        kills += 1
    assert (out / "checkpoint.pt").exists()
    assert _run(script, scene_dir, out)[0]
    back = load_lifted(out)
    assert back.meta["resumed_from"] > 0
    n0 = json.loads((tmp_path / "whole" / "lift.json").read_text())["history"][0]["n"]
    assert len(whole.splats["means"]) != n0                       # densification did act
    for k, v in whole.splats.items():
        assert back.splats[k].shape == v.shape, k
        torch.testing.assert_close(back.splats[k], v, atol=1e-5, rtol=1e-5)
    assert [r["step"] for r in back.meta["history"]] == [r["step"] for r in whole.meta["history"]]
    assert not list(out.glob(".*.tmp")), "a killed run's temporary file was left behind"


def test_truncated_files_are_named(tmp_path):
    torch.set_num_threads(1)
    s = toy_scene(tmp_path / "toy", n=4); f = toy_features(s)
    cfg = LiftConfig.tiny(iterations=6, feature_dim=8, checkpoint_every=2, strategy="none", near_plane=0.01)
    def stop(step, splats):
        if step == 3: raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt): lift(s, f, cfg, out_dir=tmp_path / "run", progress=False, callback=stop)
    ck = tmp_path / "run" / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])
    with pytest.raises(ArtifactError, match=f"{ck}: lifting checkpoint is corrupt, truncated"):
        lift(s, f, cfg, out_dir=tmp_path / "run", progress=False)
    saved = save_lifted(lift(s, f, cfg, progress=False), tmp_path / "lifted")
    for name in ("lift.json", "decoder.pt", "gaussians.ply"):
        data = (saved / name).read_bytes()
        (saved / name).write_bytes(data[: len(data) // 2])
        with pytest.raises(Exception, match=str(saved / name)): load_lifted(saved)
        (saved / name).write_bytes(data)
    load_lifted(saved)


def test_non_finite_loss_writes_nothing(tmp_path, scene_dir):
    torch.set_num_threads(1)
    bad = lambda scene: {k: v * float("nan") for k, v in toy_features(scene).items()}
    cfg = LiftConfig.tiny(iterations=6, feature_dim=8, checkpoint_every=1, strategy="none", near_plane=0.01)
    with pytest.raises(NonFiniteLoss, match="lift toy step 0: loss is nan"):
        lift_scenes([scene_dir], tmp_path / "out", bad, cfg, progress=False)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


def test_stale_lift_is_refused_or_recomputed_and_says_why(tmp_path, scene_dir, capsys):
    torch.set_num_threads(1)
    cfg = LiftConfig.tiny(iterations=4, feature_dim=8, strategy="none", near_plane=0.01)
    out = lift_scenes([scene_dir], tmp_path / "out", toy_features, cfg, progress=False)[0]
    stamp = (out / "lift.json").stat().st_mtime_ns
    lift_scenes([scene_dir], tmp_path / "out", toy_features, cfg, progress=False)
    assert (out / "lift.json").stat().st_mtime_ns == stamp                         # same inputs: reused
    other = lambda scene: {k: -v for k, v in toy_features(scene).items()}          # other 2D features
    with pytest.raises(ArtifactError, match=r"lifted scene was made from other inputs \(differing: features.digest; "
                                            r"features.digest: \w+ \(saved\) vs \w+ \(now\)\); pass --overwrite"):
        lift_scenes([scene_dir], tmp_path / "out", other, cfg, progress=False)    # refused: hours of work, perhaps
    assert (out / "lift.json").stat().st_mtime_ns == stamp
    capsys.readouterr()
    lift_scenes([scene_dir], tmp_path / "out", other, cfg, progress=False, overwrite=True)   # redone when asked
    msg = capsys.readouterr().out
    assert "lifted scene was made from other inputs (differing: features.digest" in msg and "recomputing" in msg
    assert (out / "lift.json").stat().st_mtime_ns != stamp


# ---- run folders through `fit3d lift`: nothing lost, one writer, names that never meet (issue 24 §2) ----

import contextlib, io, shutil
import fit3d.lift
from fit3d.cli import main
from fit3d.testing import toy_posed_scene
from fit3d.store import LOCK_NAME, safe_name

LIFT = dict(iterations=4, random_init=300, checkpoint_every=2)   # the tiny preset, a few steps on 300 Gaussians


def ball(d: Path, name: str = "ball") -> Path:
    "A 4-view posed scene named `name`, written in nerfstudio layout under `d/name`."
    s = toy_posed_scene(d / name, n=4, width=84, height=56); s.name = name
    write_nerfstudio(s, d / name)
    return d / name


def lift_argv(scenes, out, **flags) -> list:
    "`fit3d lift tiny` on the CPU with the tiny ViT, `LIFT` and `flags` (True: a bare flag) as command-line flags."
    argv = ["lift", "tiny", "--backbone", "tiny", "--no-pretrained", "--device", "cpu", "--out", str(out)]
    for k, v in (LIFT | flags).items(): argv += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    return argv + ["--scenes", *map(str, scenes)]


def fit3d_lift(scenes, out, **flags) -> str:
    "Run `fit3d lift` in this process; what it printed (a refusal raises `SystemExit` with its message)."
    torch.set_num_threads(1)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()): main(lift_argv(scenes, out, **flags))
    return buf.getvalue()


def test_lift_refuses_other_settings_and_keeps_what_it_did_not_write(tmp_path, monkeypatch):
    scene, out = ball(tmp_path), tmp_path / "run"
    folder = out / "lift" / "ball"; folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")                        # a file fit3d did not write
    real = fit3d.lift.lift
    def killed_at_3(*a, **kw):                                       # the first run stops at step 3, as if killed
        def stop(step, splats):
            if step == 3: raise KeyboardInterrupt
        return real(*a, **(kw | dict(callback=stop)))
    monkeypatch.setattr(fit3d.lift, "lift", killed_at_3)
    with pytest.raises(KeyboardInterrupt): fit3d_lift([scene], out, iterations=6)
    monkeypatch.setattr(fit3d.lift, "lift", real)
    ck = (folder / "checkpoint.pt").read_bytes()
    with pytest.raises(SystemExit, match=r"config\.iterations: 6 \(saved\) vs 7 \(now\)\); pass --overwrite") as e:
        fit3d_lift([scene], out, iterations=7)                       # other settings: refused, both values named
    assert str(e.value).index("differing: config.iterations") < str(e.value).index("(saved)")   # the key first, whole
    assert (folder / "checkpoint.pt").read_bytes() == ck and (folder / "notes.txt").read_text() == "mine"
    said = fit3d_lift([scene], out, iterations=7, overwrite=True)   # replaced only when asked ...
    assert json.loads((folder / "lift.json").read_text())["config"]["iterations"] == 7
    assert (folder / "notes.txt").read_text() == "mine" and "keeping notes.txt" in said   # ... and only what fit3d wrote
    assert (out / "targets" / "ball.safetensors").exists()


def test_scene_names_of_any_script_keep_their_own_folders(tmp_path):
    a, b, out = ball(tmp_path, "комната"), ball(tmp_path, "гостина"), tmp_path / "run"
    fit3d_lift([a], out)
    first = (out / "lift" / "комната" / "lift.json").read_bytes()
    fit3d_lift([b], out)                                             # before: both were "_______", b replaced a
    assert (out / "lift" / "комната" / "lift.json").read_bytes() == first
    assert {p.name for p in (out / "targets").glob("*.safetensors")} == {"комната.safetensors", "гостина.safetensors"}
    c = ball(tmp_path, "a b"); fit3d_lift([c], out)                 # a name that must change gets a digest, not "a_b"
    assert safe_name("a b").startswith("a_b-") and (out / "lift" / safe_name("a b") / "lift.json").exists()


def test_two_processes_one_folder_and_a_lock_left_by_a_killed_one(tmp_path):
    scene, out = ball(tmp_path), tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).parents[1]))
    lock, record = out / "lift" / "ball" / LOCK_NAME, out / "lift" / "ball" / "provenance.json"
    first = subprocess.Popen([sys.executable, "-m", "fit3d.cli", *lift_argv([scene], out, iterations=400)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t = time.perf_counter()
        while not record.exists() and first.poll() is None and time.perf_counter() - t < 120: time.sleep(0.1)
        assert first.poll() is None and record.exists(), "the first lift never took its folder"
        second = subprocess.run([sys.executable, "-m", "fit3d.cli", *lift_argv([scene], out, iterations=401)], env=env,
                                capture_output=True, text=True, timeout=120)
        assert first.poll() is None, "the first lift ended before the second one asked: make it longer"
    finally: first.kill(); first.wait()                              # SIGKILL: its lock file stays behind
    assert second.returncode == 1, second.stderr[-2000:]
    assert f"lifted scene ball is being written by pid {first.pid}" in second.stderr, second.stderr[-2000:]
    assert json.loads((out / "lift" / "ball" / "provenance.json").read_text())["config"]["iterations"] == 400
    assert lock.exists() and not (out / "lift" / "ball" / "lift.json").exists()
    said = io.StringIO()
    with pytest.raises(SystemExit, match="config.iterations: 400 .saved. vs 401 .now."):   # the lock is free: taken
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(io.StringIO()):
            main(lift_argv([scene], out, iterations=401))
    assert f"taking over the lock of pid {first.pid}" in said.getvalue() and "no longer running" in said.getvalue()
    assert not lock.exists()


def test_temporary_files_of_killed_runs_are_removed(tmp_path, scene_dir):
    torch.set_num_threads(1)
    cfg = LiftConfig.tiny(iterations=4, feature_dim=8, checkpoint_every=2, strategy="none", near_plane=0.01)
    dead = subprocess.Popen(["true"]); dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out = tmp_path / "out" / "toy"; out.mkdir(parents=True)
        for name in ("checkpoint.pt", "gaussians.ply", "lift.json"):   # left by a run killed between write and rename
            (out / f".{name}.{dead.pid}.tmp").write_bytes(b"half")
        (out / f".checkpoint.pt.{live.pid}.tmp").write_bytes(b"being written")
        lift_scenes([scene_dir], tmp_path / "out", toy_features, cfg, progress=False)
        assert sorted(p.name for p in out.glob(".*.tmp")) == [f".checkpoint.pt.{live.pid}.tmp"]   # a live one stays
    finally: live.kill(); live.wait()


def test_a_full_disk_is_named(tmp_path, scene_dir, monkeypatch):
    import errno, fit3d.store
    torch.set_num_threads(1)
    cfg = LiftConfig.tiny(iterations=6, feature_dim=8, checkpoint_every=2, strategy="none", near_plane=0.01)
    real, calls = torch.save, []
    def full(obj, f, *a, **kw):                                      # the second checkpoint finds the disk full
        calls.append(f)
        if len(calls) == 2: raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *a, **kw)
    monkeypatch.setattr(torch, "save", full)
    ck = tmp_path / "run" / "checkpoint.pt"
    with pytest.raises(OSError, match=f"{ck}: cannot be written: the disk is full"):
        lift(read_scene(scene_dir), toy_features(read_scene(scene_dir)), cfg, out_dir=tmp_path / "run", progress=False)
    assert torch.load(ck, weights_only=True)["state"]["step"] == 2    # the first checkpoint is intact
    # torch's own writer says only "unexpected pos": the free space tells
    def cut(obj, f, *a, **kw): raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 833728 vs 833616")
    monkeypatch.setattr(torch, "save", cut)
    monkeypatch.setattr(fit3d.store.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9, 0))
    with pytest.raises(OSError, match=r"checkpoint.pt: cannot be written: the disk is full \(0.0 MiB free"):
        fit3d.store.save_checkpoint(ck, {}, {})


def test_a_poisoned_state_never_counts_as_good(tmp_path, scene_dir):
    torch.set_num_threads(1)
    scene = read_scene(scene_dir)
    cfg = LiftConfig.tiny(iterations=6, feature_dim=8, checkpoint_every=1, strategy="none", near_plane=0.01, lr_sh0=1e30)
    with pytest.raises(NonFiniteLoss, match="step 1: loss is nan"):
        lift(scene, toy_features(scene), cfg, out_dir=tmp_path / "run", progress=False)
    ck = tmp_path / "run" / "checkpoint.pt"                          # step 0's update made the colours 1e30
    assert not ck.exists() or torch.load(ck, weights_only=True)["state"]["splats"]["sh0"].abs().max() < 1e3


def test_targets_only_of_a_saved_lift(tmp_path, monkeypatch):
    scene, out = ball(tmp_path), tmp_path / "run"
    def broken(*a, **kw): raise OSError("the lift could not be saved")
    monkeypatch.setattr(fit3d.lift, "save_lifted", broken)
    with pytest.raises(OSError, match="could not be saved"): fit3d_lift([scene], out)
    assert not (out / "targets" / "ball.safetensors").exists()     # no targets beside an unfinished lift


def test_files_follow_the_umask(tmp_path):
    scene, out = ball(tmp_path), tmp_path / "run"
    old = os.umask(0o027)
    try: fit3d_lift([scene], out)
    finally: os.umask(old)
    modes = {p.relative_to(out).as_posix(): oct(p.stat().st_mode & 0o777) for p in out.rglob("*") if p.is_file()}
    assert any(k.startswith("features/") for k in modes) and "targets/ball.safetensors" in modes
    assert set(modes.values()) == {oct(0o640)}, modes                # safetensors alone writes 0600


def test_mcmc_through_the_cli(tmp_path):
    scene, out = ball(tmp_path), tmp_path / "run"
    fit3d_lift([scene], out, strategy="mcmc", iterations=6, refine_start=1, refine_every=2)
    meta = json.loads((out / "lift" / "ball" / "lift.json").read_text())
    assert meta["n_gaussians"] > meta["history"][0]["n"] == 300       # relocated and grown by 3DGS-MCMC, on the CPU


def full_size_scannetpp(root, scene_id="0a5c013435", width=1752, height=1168):
    "A ScanNet++ scene as the toolkit's undistort writes it without FiT3D's downscale: 1752x1168 images and intrinsics."
    from PIL import Image
    from fit3d.synthetic_scannetpp import write_scannetpp_scene
    d = write_scannetpp_scene(root, scene_id, seed=0, n_views=4, width=64, height=48, n_test=1, n_points=300) / "dslr"
    meta = json.loads((d / "nerfstudio" / "transforms_undistorted.json").read_text())
    s = width / meta["w"]
    meta.update(w=width, h=height, **{k: meta[k] * s for k in ("fl_x", "fl_y", "cx", "cy")})
    (d / "nerfstudio" / "transforms_undistorted.json").write_text(json.dumps(meta))
    for f in [*(d / "undistorted_images").iterdir(), *(d / "undistorted_anon_masks").iterdir()]:
        with Image.open(f) as im: im.resize((width, height), Image.NEAREST).save(f)
    return d.parent


def test_lift_runs_on_a_full_size_scannetpp_tree(tmp_path):
    "A 1752x1168 tree is read at the paper's 876x584 and lifted; its files are still checked (a missing image is named)."
    torch.set_num_threads(1)
    scene = full_size_scannetpp(tmp_path / "release")
    assert read_scene(scene).cameras[0].width == 876
    cfg = LiftConfig.tiny(iterations=2, feature_dim=8, strategy="none", near_plane=0.01, render_scale=0.125)
    out = lift_scenes([scene], tmp_path / "out", toy_features, cfg, progress=False)[0]
    assert load_lifted(out).meta["scene_name"] == "0a5c013435"
    (scene / "dslr" / "undistorted_images" / "DSC00002.JPG").unlink()
    with pytest.raises(SceneError, match="DSC00002.JPG: image file does not exist"):
        lift_scenes([scene], tmp_path / "out2", toy_features, cfg, progress=False)
