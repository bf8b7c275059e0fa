"""The pretraining quality gate: a pretrained fit3d model against the same architecture with random weights.

Linear-probe segmentation mIoU, depth AbsRel/RMSE and correspondence recall@10px on held-out synthetic rooms (the
benchmark's 6 training + 3 validation rooms at 224x168, 1,500-step probes). Gate: mIoU >= 1.75x random. Prints a
table, writes gate.json and pca_vs_random.png to $OUT (or runs/pretrain/gate).

    python tests/benchmarks/bench_pretrain_gate.py --name fit3d_tiny                 # GPU, fit3d/weights/fit3d_tiny.safetensors
    python tests/benchmarks/bench_pretrain_gate.py --name fit3d_tiny --weights W.safetensors
    python tests/benchmarks/bench_pretrain_gate.py --smoke                           # CPU, seconds (random vs random)
"""
import argparse, os, time
from pathlib import Path

import torch
from fit3d.pretrain import ARCHS, PretrainConfig, create_vit, load_pretrained
from fit3d.pretrain_eval import gate, gate_table, held_out_views, pca_picture
from fit3d.store import write_json


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="fit3d_tiny", choices=list(ARCHS))
    ap.add_argument("--weights", type=Path, default=None, help="default: fit3d/weights/<name>.safetensors")
    ap.add_argument("--iters", type=int, default=1500); ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--root", default="data/pretrain/gate", help="where the benchmark rooms are written (reused)")
    ap.add_argument("--smoke", action="store_true", help="fit3d_micro, random weights on both sides, tiny rooms")
    a = ap.parse_args()
    out = Path(os.environ.get("OUT") or "runs/pretrain/gate"); out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    if a.smoke:
        models = {"fit3d_micro": create_vit("fit3d_micro", seed=1), "random": create_vit("fit3d_micro")}
        kw = dict(n_train=1, n_val=1, views=3, width=56, height=42, iters=10, root=out / "rooms")
    else:
        models = {a.name: load_pretrained(a.name, a.weights), "random": create_vit(a.name)}
        kw = dict(iters=a.iters, root=a.root, seed=a.seed)
    res = gate(models, **kw)
    name = next(iter(models))
    ok = res[name]["miou"] >= 1.75 * res["random"]["miou"]
    print(gate_table(res))
    print(f"gate (mIoU >= 1.75x random): {'PASS' if ok else 'FAIL'}; {time.perf_counter() - t:.0f} s on "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}")
    write_json(out / "gate.json", dict(results=res, passed=ok, settings={k: str(v) for k, v in kw.items()}))
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = PretrainConfig(width=56, height=42) if a.smoke else PretrainConfig()
    pca_picture(models[name], held_out_views(cfg, dev, 1 if a.smoke else 3), {"random": models["random"]}).save(out / "pca_vs_random.png")


if __name__ == "__main__":
    main()
