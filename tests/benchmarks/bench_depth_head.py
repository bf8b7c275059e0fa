"""The linear depth head's training step, in the official order (features upsampled x4, then the 1x1 conv to 256
bins) against ours (the conv at the features' resolution, then its 256 bins upsampled): the same numbers, since both
are linear and bilinear weights sum to 1 (checked in `07_probe`). Four heads side by side, as a results table trains
them (original, duplicated, fine-tuned, combined), on cached features of one batch. Prints ms per step and the ratio,
measured side by side in one run, and the largest difference between the two orders' outputs.

    python tests/benchmarks/bench_depth_head.py            # the CPU demo's sizes: ViT-Ti (192) at 224x168, batch 8
    python tests/benchmarks/bench_depth_head.py --dim 384 --size 448 336 --batch 16
"""
import argparse, time
import torch
from fit3d.probe import DepthHead, _forward, depth_loss_fn, DepthProbeConfig


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=192, help="the backbone's width (rows: +CLS, duplicated, combined)")
    ap.add_argument("--size", type=int, nargs=2, default=(224, 168), help="image width, height (patch 14)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    w, h = a.size
    torch.manual_seed(0)
    chans = {"original": 2 * a.dim, "duplicated": 4 * a.dim, "finetuned": 2 * a.dim, "combined": 4 * a.dim}  # + CLS
    feats = {k: [torch.randn(c, h // 14, w // 14, device=dev) for _ in range(a.batch)] for k, c in chans.items()}
    gts = [torch.rand(1, h, w, device=dev) * 9 + 0.5 for _ in range(a.batch)]
    heads = {k: DepthHead(c).to(dev) for k, c in chans.items()}
    loss = depth_loss_fn(DepthProbeConfig())
    def step(official: bool):
        DepthHead.conv_first = (lambda self: False) if official else orig
        total = 0.0
        for k, hd in heads.items():
            outs = _forward(hd, feats[k], [(h, w)] * a.batch)
            l = loss(outs, gts, 1000); l.backward(); total += float(l.detach())
        return total
    orig = DepthHead.conv_first
    ms = {}
    for official in (True, False, True, False):   # interleaved, after one warm-up step each
        step(official)
        if dev == "cuda": torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(a.steps): step(official)
        if dev == "cuda": torch.cuda.synchronize()
        ms.setdefault(official, []).append((time.perf_counter() - t) / a.steps * 1e3)
    with torch.no_grad():
        diff = 0.0
        for k, hd in heads.items():
            DepthHead.conv_first = lambda self: False; ref = _forward(hd, feats[k], [(h, w)] * a.batch)
            DepthHead.conv_first = orig; ours = _forward(hd, feats[k], [(h, w)] * a.batch)
            diff = max(diff, max(float((x - y).abs().max()) for x, y in zip(ref, ours)))
    off, ours = min(ms[True]), min(ms[False])
    print(f"{dev}, widths {sorted(set(chans.values()))}, batch {a.batch} at {w}x{h}: official order {off:.1f} ms/step, "
          f"conv first {ours:.1f} ms/step: {off / ours:.2f}x; largest output difference {diff:.2e} m")


if __name__ == "__main__": main()
