"""Fixed-step AdamW probes against heads solved to convergence (fit3d.solve), on the CPU demo's data: for each way of
training, the seconds it takes, the validation metric of the original and the duplicated control, and whether the
control check (fit3d.protocol.control_check: within 0.3 mIoU and 1% RMSE) holds. Prints a table; writes JSON to
--json (default: $OUT/bench_solve_<backbone>.json when $OUT is set).

    python tests/benchmarks/bench_solve.py --backbone fit3d_tiny          # the committed proxy, CPU
    python tests/benchmarks/bench_solve.py --backbone dinov2_small        # real DINOv2 ViT-S/14 (fit3d weights)
"""
import argparse, json, os, tempfile, time
from pathlib import Path

import torch

from fit3d.datasets import synthetic
from fit3d.demo import _LongSide
from fit3d.features import load_backbone
from fit3d.probe import ProbeConfig, DepthProbeConfig
from fit3d.protocol import FeatureSets, run_probes, control_check
from fit3d.synthetic import make_benchmark


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="fit3d_tiny")
    ap.add_argument("--train", type=int, default=2, help="training rooms (the CPU demo on DINOv2: 2)")
    ap.add_argument("--val", type=int, default=2, help="held-out rooms")
    ap.add_argument("--views", type=int, default=24)
    ap.add_argument("--steps", type=int, nargs="+", default=[200, 1000, 4000], help="fixed AdamW step counts to compare")
    ap.add_argument("--long-side", type=int, default=224, help="the backbone's input long side (the CPU demo's)")
    ap.add_argument("--data", default=None, help="a synthetic benchmark folder (default: made in a temporary folder)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    root = Path(a.data or tempfile.mkdtemp()) / "synthetic"
    make_benchmark(root, a.train, a.val, a.views, 128, 96, progress=False)   # the CPU demo's rooms
    train, val = (_LongSide(synthetic(root, s), a.long_side) for s in ("train", "val"))
    bb = load_backbone(a.backbone, device=dev)
    n_classes = len(synthetic(root, "train").classes)
    ways = [("lbfgs", None)] + [("adamw", n) for n in a.steps]   # solved first: what a stopped run keeps
    rows, t_all = [], time.perf_counter()
    for solver, steps in ways:
        kw = dict(device=dev, progress=False, solver=solver, **({"iters": steps} if steps else {}))
        s = run_probes(FeatureSets(bb, None, "seg"), train, val, ProbeConfig(**kw), "quick", n_classes=n_classes)
        d = run_probes(FeatureSets(bb, None, "depth"), train, val, DepthProbeConfig(**kw), "quick")
        table = {r: dict(segmentation=s[r], depth=d[r]) for r in ("original", "duplicated")}
        c = control_check(table)
        rows.append(dict(way=f"AdamW {steps} steps" if steps else "solved (L-BFGS)", solver=solver, steps=steps,
                         seconds=dict(seg=s["_seconds"]["train"], depth=d["_seconds"]["train"]),
                         iterations={t: {r: g.get("solver_iterations") for r, g in x.items()}
                                     for t, x in (("seg", s), ("depth", d)) if solver == "lbfgs"} or None,
                         mIoU={r: 100 * s[r]["mIoU"] for r in ("original", "duplicated")},
                         rmse={r: d[r]["rmse"] for r in ("original", "duplicated")},
                         control=dict(ok=c["ok"], miou=c["miou"], rmse=c["rmse"])))
        x = rows[-1]
        print(f"{x['way']:>20}: train {x['seconds']['seg']:6.1f} s seg + {x['seconds']['depth']:6.1f} s depth | "
              f"mIoU {x['mIoU']['original']:.2f} -> {x['mIoU']['duplicated']:.2f} ({c['miou']:+.2f}) | "
              f"RMSE {x['rmse']['original']:.4f} -> {x['rmse']['duplicated']:.4f} ({100 * c['rmse']:+.2f}%) | "
              f"control {'ok' if c['ok'] else 'FAILED'}", flush=True)
        write(rows, a, dev, t_all)   # after every row: a run stopped early keeps what it measured


def write(rows, a, dev, t_all):
    out = dict(backbone=a.backbone, device=torch.cuda.get_device_name() if dev == "cuda" else "cpu",
               threads=torch.get_num_threads(), data=dict(train=a.train, val=a.val, views=a.views, size=[128, 96],
                                                           long_side=a.long_side), rows=rows,
               seconds=time.perf_counter() - t_all)
    path = a.json or (os.path.join(os.environ["OUT"], f"bench_solve_{a.backbone}.json") if os.environ.get("OUT") else None)
    if path: Path(path).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
