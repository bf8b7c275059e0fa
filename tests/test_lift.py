"""Stage I safety on the CPU: a lift killed (SIGKILL) at random points resumes to the result of an uninterrupted run,
with densification on; bad or stale files are named; a non-finite loss stops before anything is written."""
import json, os, random, signal, subprocess, sys, textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fit3d.formats import write_nerfstudio, read_scene
from fit3d.testing import toy_scene
from fit3d.lift import LiftConfig, lift, lift_scenes, load_lifted, save_lifted
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


def test_stale_lift_is_recomputed_and_says_why(tmp_path, scene_dir, capsys):
    torch.set_num_threads(1)
    cfg = LiftConfig.tiny(iterations=4, feature_dim=8, strategy="none", near_plane=0.01)
    out = lift_scenes([scene_dir], tmp_path / "out", toy_features, cfg, progress=False)[0]
    stamp = (out / "lift.json").stat().st_mtime_ns
    lift_scenes([scene_dir], tmp_path / "out", toy_features, cfg, progress=False)
    assert (out / "lift.json").stat().st_mtime_ns == stamp                         # same inputs: reused
    other = lambda scene: {k: -v for k, v in toy_features(scene).items()}          # other 2D features
    capsys.readouterr()
    lift_scenes([scene_dir], tmp_path / "out", other, cfg, progress=False)
    msg = capsys.readouterr().out
    assert "lifted scene was made from other inputs (features:" in msg and "recomputing" in msg
    assert (out / "lift.json").stat().st_mtime_ns != stamp
