"""Per-step cost of the two probe protocols: "quick" (heads on features cached once per image) against "official"
(every step augments the batch and runs both backbones on the crops), for segmentation and depth, all four rows of
a results table trained side by side; plus evaluation per image (official: slide windows / flip TTA; quick: whole
image). Prints a table; writes JSON to $OUT/bench_probe.json when $OUT is set.

    python tests/benchmarks/bench_probe.py             # GPU: ViT-S/14 (random weights), batch 16, 512 / 416x544 crops
    python tests/benchmarks/bench_probe.py --smoke     # CPU: tiny ViT, small crops, a few steps
"""
import argparse, copy, json, os, time
from pathlib import Path

import numpy as np
import torch

from fit3d.features import load_backbone
from fit3d.probe import ProbeConfig, DepthProbeConfig, fit_heads, seg_loss_fn, depth_loss_fn, _cached_batches
from fit3d.protocol import (FeatureSets, SegAugment, DepthAugment, _official_batches, _cache_rows, _heads, _evaluate,
                            _target, toy_probe_samples)


def sync():
    if torch.cuda.is_available(): torch.cuda.synchronize()


def timed(fn):
    sync(); t = time.perf_counter(); out = fn(); sync()
    return out, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="tiny sizes for a CPU run")
    ap.add_argument("--backbone", default="dinov2_small")
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per protocol and task")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--images", type=int, default=32, help="synthetic samples (584 x 876, as ScanNet++ at half resolution)")
    a = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() and not a.smoke else "cpu"
    if a.smoke:
        name, steps, batch, n, (h, w) = "tiny", 3, 2, 4, (84, 112)
        seg_aug = SegAugment(scale=(224, 56), crop=(56, 56), stride=(37, 37), test_scale=(224, 56))
        dep_aug = DepthAugment(crop=(56, 84))
    else:
        name, steps, batch, n, (h, w) = a.backbone, a.steps, a.batch, a.images, (584, 876)
        seg_aug, dep_aug = SegAugment(), DepthAugment()
    torch.manual_seed(0)
    orig = load_backbone(name, pretrained=False, device=dev)
    tuned = copy.deepcopy(orig)
    samples = toy_probe_samples(n, h, w, k=3, cell=max(h // 6, 4), seed=0)
    rows, out = [], {}
    for task in ("seg", "depth"):
        sets = FeatureSets(orig, tuned, task)
        kw = dict(batch_size=batch, progress=False, device=dev)
        cfg = ProbeConfig(**kw) if task == "seg" else DepthProbeConfig(**kw)
        aug, key = (seg_aug, "labels") if task == "seg" else (dep_aug, "depth")
        loss = seg_loss_fn(cfg) if task == "seg" else depth_loss_fn(cfg)
        (feats, _, _), t_cache = timed(lambda: _cache_rows(sets, samples, False, False))
        targets = [_target(s, key, "cpu", i) for i, s in enumerate(samples)]
        res = {}
        for protocol in ("quick", "official"):
            def run(iters):
                c = type(cfg)(**{**cfg.__dict__, "iters": iters})
                heads = _heads(sets, task, c, 3)
                b = _cached_batches(feats, targets, c) if protocol == "quick" else _official_batches(sets, samples, task, c, aug)
                return heads, fit_heads(heads, b, loss, c, task)
            run(2)                                   # warm-up (cuDNN autotuning, allocator)
            (heads, _), t = timed(lambda: run(steps))
            ev = samples[:2]
            _, te = timed(lambda: _evaluate(sets, heads, ev, task, protocol, aug, None, False, cfg))
            res[protocol] = dict(ms_per_step=1000 * t / steps, eval_ms_per_image=1000 * te / len(ev))
        res["cache_ms_per_image"] = 1000 * t_cache / n
        out[task] = res
        for p in ("quick", "official"):
            rows.append((task, p, res[p]["ms_per_step"], res[p]["eval_ms_per_image"]))
    print(f"device: {torch.cuda.get_device_name() if dev == 'cuda' else 'cpu'}; backbone {name} (random weights) twice "
          f"(original + fine-tuned), 4 heads; batch {batch}; crops seg {seg_aug.crop}, depth {dep_aug.crop}; {steps} steps")
    print(f"{'task':6s} {'protocol':9s} {'ms/step':>9s} {'eval ms/img':>12s}")
    for t, p, ms, ems in rows: print(f"{t:6s} {p:9s} {ms:9.1f} {ems:12.1f}")
    for t in ("seg", "depth"):
        r = out[t]
        print(f"{t}: official/quick per step x{r['official']['ms_per_step'] / r['quick']['ms_per_step']:.1f}; "
              f"quick caching {r['cache_ms_per_image']:.1f} ms/image once")
    if os.environ.get("OUT"):
        Path(os.environ["OUT"]).mkdir(parents=True, exist_ok=True)
        (Path(os.environ["OUT"]) / "bench_probe.json").write_text(json.dumps(dict(backbone=name, batch=batch, steps=steps, device=dev, results=out), indent=1))


if __name__ == "__main__":
    main()
