"""`fit3d reproduce` under torchrun (CPU processes, gloo): the probe units are shared among the ranks, each exactly once;
with 3 processes Stage II's batch 2 runs on 2 of them and gives the weights of a 2-process run."""
import json, os, subprocess, sys, textwrap
from pathlib import Path

import torch
from safetensors.torch import load_file
from fit3d.synthetic import make_scannetpp_tree

SCRIPT = textwrap.dedent("""
    import sys, json, torch
    from pathlib import Path
    import fit3d.reproduce as R
    from fit3d.lift import LiftConfig, rank_and_world
    torch.set_num_threads(1)
    shard = R.probe_shard
    def spy(units, *a, **k):   # which units this rank ran, in its own file
        mine = shard(units, *a, **k)
        rank, world = rank_and_world()
        Path(sys.argv[2], f"rank{rank}.json").write_text(json.dumps(dict(units=units, mine=mine)))
        return mine
    R.probe_shard = spy
    cfg = R.ReproduceConfig(root=Path(sys.argv[1]), out=Path(sys.argv[2]), backbone="tiny", downscale=1.0,
                            datasets=("scannetpp",), protocol="quick", probe_iters=10, device="cpu",
                            lift=LiftConfig.tiny(iterations=20))
    R.reproduce(cfg)
""")


def run(tmp_path, tree, processes: int) -> tuple[Path, str]:
    "The recipe under torchrun with `processes` CPU processes: (its run folder, its output)."
    out = tmp_path / f"runs{processes}"; out.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
           str(tmp_path / "run.py"), str(tree), str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out, r.stdout


def test_reproduce_shards_probe_units_over_ranks(tmp_path):
    tree = tmp_path / "scannetpp"
    make_scannetpp_tree(tree, n_train=2, n_val=1, views=6, width=48, height=36)
    (tmp_path / "run.py").write_text(SCRIPT)
    weights = {}
    for n in (2, 3):   # 3: more processes than the global batch 2 divides over
        out, stdout = run(tmp_path, tree, n)
        ran = {k: json.loads((out / f"rank{k}.json").read_text()) for k in range(n)}
        units = [tuple(u) for u in ran[0]["units"]]
        assert units == [("scannetpp", "seg"), ("scannetpp", "depth")] and all(r["units"] == ran[0]["units"] for r in ran.values())
        mine = {k: [tuple(u) for u in v["mine"]] for k, v in ran.items()}
        assert sorted(sum(mine.values(), [])) == sorted(units)     # every unit run, and by one rank only
        assert mine[0] and mine[1]                                 # both units' ranks had work
        root = out / "tiny"
        for k, us in mine.items():   # each unit's files were written by the rank that ran it
            for name, task in us:
                timing = json.loads((root / "probe" / name / f"{task}.timing.json").read_text())["stages"][task]
                assert timing["rank"] == k and timing["processes"] == n
                res = json.loads((root / "probe" / name / f"{task}.json").read_text())
                want = {"seg": "segmentation", "depth": "depth"}[task]
                assert all(set(res[row]) == {want} for row in ("original", "duplicated", "finetuned", "combined"))
        table = (root / "results.md").read_text()   # rank 0 put the units side by side
        assert "## scannetpp" in table and "| combined (FiT3D) |" in table
        row = next(l for l in table.splitlines() if l.startswith("| original |"))
        assert "–" not in row and row.count("|") == 7, row            # segmentation and depth both filled in
        timings = json.loads((root / "timings.json").read_text())["stages"]
        assert {"Stage I: lift", "Stage II: fine-tune", "probes: scannetpp"} <= set(timings)
        assert set(timings["probes: scannetpp"]["units"]) == {"seg", "depth"}
        assert timings["Stage I: lift"]["processes"] == n and timings["Stage II: fine-tune"]["processes"] == 2
        said = "Stage II: global batch 2 on 2 of 3 processes; the others wait"
        assert stdout.count(said) == (n == 3), stdout[-3000:]
        weights[n] = load_file(str(root / "finetune" / "finetuned.safetensors"))
    assert weights[3].keys() == weights[2].keys() and all(torch.equal(weights[3][k], weights[2][k]) for k in weights[2])
