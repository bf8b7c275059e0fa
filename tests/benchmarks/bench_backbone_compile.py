"""The probes' floor: the two backbones' forward passes of an official step, eager against `torch.compile`d (issue 23 §3).

Even with free heads and augmentation, the official schedules' backbone passes take 1.72 hours on one H100 at the eager
bf16 rates (README): the 6-hour aim needs them faster. This times `FeatureSets.parts` (the original and fine-tuned
ViT-S/14 on one batch of crops, bf16 autocast, what every probe step runs) on the segmentation crops (512 x 512) and the
depth crops (416 x 544), batch 16, three ways side by side in one run: eager; `torch.compile` of each backbone's
`tokens` (default mode); and mode "reduce-overhead" (CUDA graphs). It checks the compiled outputs against eager
(relative difference) and prints ms per batch, the speed-up and the first call's seconds (the compilation).
Writes JSON to $OUT/bench_backbone_compile.json when $OUT is set.

    python tests/benchmarks/bench_backbone_compile.py            # GPU: dinov2_small (random weights), batch 16
    python tests/benchmarks/bench_backbone_compile.py --smoke    # CPU: tiny ViT, small crops, default mode only
"""
import argparse, copy, json, os, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import timer
from fit3d.features import load_backbone
from fit3d.protocol import FeatureSets


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny ViT and crops on the CPU: a check that it runs")
    ap.add_argument("--backbone", default="dinov2_small")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=20)
    a = ap.parse_args(argv)
    dev = torch.device("cuda" if torch.cuda.is_available() and not a.smoke else "cpu")
    name, batch, crops = (("tiny", 2, dict(seg=(56, 56), depth=(42, 56))) if a.smoke else
                          (a.backbone, a.batch, dict(seg=(512, 512), depth=(416, 544))))
    modes = ("default",) if a.smoke else ("default", "reduce-overhead")
    torch.manual_seed(0)
    orig = load_backbone(name, pretrained=False, device=dev).eval()
    tuned = copy.deepcopy(orig)
    run, res = timer(dev), {}
    for task, (h, w) in crops.items():
        x = torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(1)).to(dev)
        ref = FeatureSets(orig, tuned, task).parts(x)
        r = res.setdefault(task, dict(crop=[h, w]))
        for _ in range(3): FeatureSets(orig, tuned, task).parts(x)
        r["eager_ms"] = sorted(run(lambda: FeatureSets(orig, tuned, task).parts(x)) for _ in range(a.repeats))[a.repeats // 2]
        for mode in modes:
            o2, t2 = copy.deepcopy(orig), copy.deepcopy(tuned)
            for m in (o2, t2): m.tokens = torch.compile(m.tokens, mode=mode, dynamic=False)
            sets = FeatureSets(o2, t2, task)
            t = time.perf_counter(); out = sets.parts(x)
            if dev.type == "cuda": torch.cuda.synchronize()
            first = time.perf_counter() - t
            rel = max(float((out[k] - ref[k]).norm() / ref[k].norm()) for k in ref if ref[k] is not None)
            for _ in range(3): sets.parts(x)
            ms = sorted(run(lambda: sets.parts(x)) for _ in range(a.repeats))[a.repeats // 2]
            r[mode] = dict(ms=ms, speedup=r["eager_ms"] / ms, first_s=first, rel_diff=rel)
    device = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    print(f"device: {device}; {name} (random weights) twice, batch {batch}, bf16 autocast on CUDA; median of "
          f"{a.repeats}; ms per batch (both backbones)")
    print(f"{'task':6s} {'crop':>9s} {'eager':>8s} " + " ".join(f"{m:>16s} {'x':>5s} {'first s':>7s} {'rel':>7s}" for m in modes))
    for task, r in res.items():
        print(f"{task:6s} {'x'.join(map(str, r['crop'])):>9s} {r['eager_ms']:8.2f} " + " ".join(
            f"{r[m]['ms']:16.2f} {r[m]['speedup']:5.2f} {r[m]['first_s']:7.1f} {r[m]['rel_diff']:7.1e}" for m in modes))
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "bench_backbone_compile.json").write_text(json.dumps(
            dict(device=device, backbone=name, batch=batch, results=res), indent=1))


if __name__ == "__main__":
    main()
