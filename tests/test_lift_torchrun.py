"`lift_scenes` under torchrun: each rank lifts its own scenes; a second run skips finished ones."
import json, os, subprocess, sys, textwrap
from pathlib import Path

from fit3d.formats import write_nerfstudio
from fit3d.testing import toy_scene

SCRIPT = textwrap.dedent("""
    import sys, torch, torch.nn.functional as F
    from fit3d.lift import LiftConfig, lift_scenes, rank_and_world
    torch.set_num_threads(1)
    def feats(scene):  # fake 2D features: a fixed projection of 4x4-pooled colours
        W = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
        return {c.name: torch.einsum("dc,chw->dhw", W, F.avg_pool2d(torch.from_numpy(scene.image(i)).permute(2, 0, 1)[None], 4)[0])
                for i, c in enumerate(scene.cameras)}
    out, scenes = sys.argv[1], sys.argv[2:]
    done = lift_scenes(scenes, out, feats, LiftConfig.tiny(iterations=10, strategy="none"), device="cpu", progress=False)
    rank, world = rank_and_world()
    open(f"{out}/rank{rank}.txt", "w").write(" ".join(sorted(p.name for p in done)))
""")


def test_lift_scenes_shards_over_ranks(tmp_path):
    scenes = []
    for k in range(3):
        s = toy_scene(tmp_path / f"s{k}", n=4); s.name = f"s{k}"
        write_nerfstudio(s, tmp_path / f"s{k}"); scenes.append(str(tmp_path / f"s{k}"))
    (tmp_path / "run.py").write_text(SCRIPT)
    out = tmp_path / "lifted"; out.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(tmp_path / "run.py"), str(out), *scenes]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "rank0.txt").read_text() == "s0 s2" and (out / "rank1.txt").read_text() == "s1"
    assert all(json.loads((out / n / "lift.json").read_text())["scene_name"] == n for n in ("s0", "s1", "s2"))
    stamp = (out / "s1" / "lift.json").stat().st_mtime_ns
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0 and (out / "s1" / "lift.json").stat().st_mtime_ns == stamp   # finished scenes are skipped
