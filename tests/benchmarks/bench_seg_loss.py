"""The segmentation head's upsampling and loss, the part that dominates an official probe step (issue 23 §2).

One head's logits (batch 16, 100 classes, 37 x 37 patches of a 512 crop) resized to 512 x 512 and scored by
cross-entropy against labels with ignored pixels, forward and backward, five ways, side by side in one run:

  interpolate   `F.interpolate` then `F.cross_entropy` (the official head's ops)
  matmul        `resize_bilinear` (two matrix products with F.interpolate's own weights) then cross-entropy (fit3d)
  compiled      `torch.compile` of the interpolate version: Inductor may fuse the resize into the softmax's
                reductions, so the 16 x 100 x 512 x 512 logits need never be written
  compiled mm   `torch.compile` of the matmul version
  bands         `upsampled_cross_entropy`: the resize, the loss and its gradient a band of output rows at a time,
                never holding the whole resized batch (what `fit3d.probe.SEG_LOSS_LOW_RES` switches on)

It checks each loss and gradient against the first (relative difference), then prints ms per forward + backward and
the ratio to `interpolate`. Writes JSON to $OUT/bench_seg_loss.json when $OUT is set.

    python tests/benchmarks/bench_seg_loss.py            # GPU: the sizes above
    python tests/benchmarks/bench_seg_loss.py --smoke    # CPU: batch 2, 16 classes, 128 x 128
    python tests/benchmarks/bench_seg_loss.py --cpu --batch 4 --repeats 3   # CPU ratios at the real sizes, smaller batch
"""
import argparse, json, os, sys, time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from _timing import timer
from fit3d.probe import resize_bilinear, upsampled_cross_entropy


def loss_interpolate(z, y):
    up = F.interpolate(z.float(), y.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(up, y, ignore_index=-1, reduction="sum") / y.numel()


def loss_matmul(z, y):
    return F.cross_entropy(resize_bilinear(z, y.shape[-2:]), y, ignore_index=-1, reduction="sum") / y.numel()


def loss_bands(z, y):
    return upsampled_cross_entropy(z, y) / y.numel()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, for a CPU check of the script")
    ap.add_argument("--repeats", type=int, default=20, help="timed forward + backward passes per way")
    ap.add_argument("--cpu", action="store_true", help="on the CPU even where a GPU is")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--no-compile", action="store_true", help="leave out the torch.compile ways")
    a = ap.parse_args(argv)
    dev = torch.device("cuda" if torch.cuda.is_available() and not (a.smoke or a.cpu) else "cpu")
    n, k, h, size = (2, 16, 9, 128) if a.smoke else (a.batch, 100, 37, 512)
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(n, k, h, h, generator=g).to(dev, torch.bfloat16)
    y = torch.randint(0, k, (n, size, size), generator=g)
    y[torch.rand(n, size, size, generator=g) < 0.2] = -1   # ignored pixels, as unlabelled ones are
    y = y.to(dev)
    ways = {"interpolate": loss_interpolate, "matmul": loss_matmul, "bands": loss_bands}
    if not a.no_compile: ways |= {"compiled": torch.compile(loss_interpolate), "compiled mm": torch.compile(loss_matmul)}
    run, res, ref = timer(dev), {}, None
    for name, fn in ways.items():
        z = z0.clone().requires_grad_(True)
        def step():
            z.grad = None
            loss = fn(z, y); loss.backward(); return loss
        t = time.perf_counter(); loss = step()   # the first pass compiles
        first = time.perf_counter() - t
        if ref is None: ref = (loss.detach().float(), z.grad.float().clone())
        dl = float((loss.detach().float() - ref[0]).abs() / ref[0].abs())
        dg = float((z.grad.float() - ref[1]).norm() / ref[1].norm())
        for _ in range(3): step()
        ms = sorted(run(step) for _ in range(a.repeats))[a.repeats // 2]
        res[name] = dict(ms=ms, first_s=first, loss_rel=dl, grad_rel=dg)
    base = res["interpolate"]["ms"]
    print(f"device: {torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'}; logits {n}x{k}x{h}x{h} bf16 -> "
          f"{size}x{size}, 20% ignored; median of {a.repeats} forward + backward passes")
    print(f"{'way':<12} {'ms':>8} {'vs interpolate':>15} {'first pass s':>13} {'loss rel':>9} {'grad rel':>9}")
    for name, r in res.items():
        print(f"{name:<12} {r['ms']:8.2f} {base / r['ms']:14.2f}x {r['first_s']:13.1f} {r['loss_rel']:9.1e} {r['grad_rel']:9.1e}")
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "bench_seg_loss.json").write_text(json.dumps(
            dict(device=str(dev), shape=[n, k, h, h], size=size, results=res), indent=1))


if __name__ == "__main__":
    main()
