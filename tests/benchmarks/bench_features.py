"""Dense-feature extraction throughput: fit3d.features.Backbone against a bare timm `forward_features`.

ViT-S/14 and ViT-B/14 (DINOv2 architecture, random init: no weights needed) at 448x644, same batch, bf16 autocast,
warm-up, CUDA events, median of repeats. Three timings per model, interleaved within each repeat:
  bare      `model.forward_features(x)` on a normalised batch already on the GPU
  Backbone  `backbone(x)`: normalisation + forward_features + prefix-token drop + reshape to (B, C, h, w)
  extract   `iter_features` from uint8 host images: upload, forward, fp16 cast, download (what the cache stores)
The overhead column is Backbone against bare. Writes nothing.

    python tests/benchmarks/bench_features.py                 # GPU
    python tests/benchmarks/bench_features.py --tiny          # CPU smoke run with the tiny ViT
"""
import argparse, statistics, time

import numpy as np
import timm
import torch

from fit3d.features import iter_features, load_backbone


from _timing import timer  # noqa: E402  (beside this script)


def bench(name, dev, batch, H, W, warmup, repeats, **kw):
    bb = load_backbone(name, pretrained=False, device=dev, **kw)
    x01 = torch.rand(batch, 3, H, W, device=dev)
    xn = (x01 - bb.pixel_mean) / bb.pixel_std
    host = [np.random.randint(0, 256, (H, W, 3), np.uint8) for _ in range(batch)]
    amp = dict(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")
    def bare():
        with torch.inference_mode(), torch.autocast(**amp): bb.model.forward_features(xn)
    def wrapped():
        with torch.inference_mode(), torch.autocast(**amp): bb(x01)
    def extract(): list(iter_features(bb, host, batch_size=batch))
    fns = dict(bare=bare, backbone=wrapped, extract=extract)
    run, ms = timer(dev), {k: [] for k in fns}
    for _ in range(warmup):
        for f in fns.values(): f()
    for _ in range(repeats):
        for k, f in fns.items(): ms[k].append(run(f))
    med = {k: statistics.median(v) for k, v in ms.items()}
    h, w = bb.grid_size(H, W)
    return dict(model=name, dim=bb.dim, grid=f"{h}x{w}", **{k: batch / (v / 1e3) for k, v in med.items()},
                ms_bare=med["bare"], ms_backbone=med["backbone"], overhead=100 * (med["backbone"] / med["bare"] - 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run: the tiny ViT at a small size")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, nargs=2, default=(448, 644), metavar=("H", "W"))
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=20)
    a = ap.parse_args()
    if a.tiny:
        dev, models = torch.device("cpu"), ["tiny"]
        a.batch, a.size, a.warmup, a.repeats = 2, (112, 154), 1, 3
        torch.set_num_threads(1)  # the CPU check is about running, not speed
    else:
        if not torch.cuda.is_available(): raise SystemExit("no GPU: run with --tiny for a CPU check")
        dev, models = torch.device("cuda"), ["dinov2_small", "dinov2_base"]
    H, W = a.size
    where = torch.cuda.get_device_name() if dev.type == "cuda" else "CPU"
    print(f"# {where}, torch {torch.__version__}, timm {timm.__version__}; batch {a.batch}, {H}x{W}, "
          f"{'bf16 autocast' if dev.type == 'cuda' else 'fp32'}, median of {a.repeats} after {a.warmup} warm-up")
    head = f"{'model':<14}{'dim':>5}{'grid':>8}{'bare img/s':>12}{'Backbone img/s':>16}{'overhead':>10}{'extract img/s':>15}"
    print(head); print("-" * len(head))
    for m in models:
        r = bench(m, dev, a.batch, H, W, a.warmup, a.repeats)
        print(f"{r['model']:<14}{r['dim']:>5}{r['grid']:>8}{r['bare']:>12.1f}{r['backbone']:>16.1f}"
              f"{r['overhead']:>9.1f}%{r['extract']:>15.1f}")
    print("extract = iter_features from uint8 host images (upload + forward + fp16 download)")


if __name__ == "__main__":
    main()
