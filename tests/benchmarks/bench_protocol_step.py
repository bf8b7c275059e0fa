"""One official-protocol training step against the bare forward passes of its two backbones, on the same batch, in
one run (issue 23 §2): goal bare forwards / step >= 0.8.

For segmentation (512 x 512 crops) and depth (DepthAugment's 416 x 544 crops), batch 16, both backbones ViT-S/14
(random weights) and the four rows' heads (segmentation: 100 classes, as ScanNet++'s), at three precisions (fp32,
as the official configs: `fp16 = None`; bf16 autocast for the frozen backbones with fp32 heads; bf16 for both, the
default of `FeatureSets` and `ProbeConfig`), it measures:

  bare       the two backbones' forward passes on one batch of crops (no grad): `FeatureSets.parts`
  aug old    the augmentation of a batch, one sample at a time (`seg_augment` / `depth_augment`)
  aug new    the same augmentation batched on the device (`seg_augment_batch` / `depth_augment_batch`)
  heads      the four heads' forward, loss, backward and AdamW step on fixed features (`fit_heads`)
  heads interp  the same with the heads' outputs resized by `F.interpolate` (before `resize_bilinear`), side by side
  heads bands   segmentation: the same with the loss resizing band by band (`SEG_LOSS_LOW_RES`, `upsampled_cross_entropy`)
  step old   a whole official step (`_official_batches(batched=False)` + `fit_heads`): augment, backbones, heads
  step new   the same with the batched augmentation (what `run_probes` runs)

then the ratio bare / step, and torch.profiler's top ops (by CUDA time on the GPU) over a few new steps.
Writes JSON to $OUT/bench_protocol_step.json when $OUT is set.

    python tests/benchmarks/bench_protocol_step.py            # GPU: ViT-S/14, batch 16 (about a minute)
    python tests/benchmarks/bench_protocol_step.py --smoke    # CPU: tiny ViT, small crops, a few steps
"""
import argparse, copy, json, os, sys, time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from _timing import timer
import fit3d.probe as probe_module
from fit3d.features import load_backbone
from fit3d.probe import ProbeConfig, DepthProbeConfig, fit_heads, seg_loss_fn, depth_loss_fn, resize_bilinear
from fit3d.protocol import (FeatureSets, SegAugment, DepthAugment, _official_batches, _official_crops, _heads,
                            toy_probe_samples)

PRECISIONS = {"fp32": (False, False), "bf16 backbones": (True, False), "bf16": (True, True)}  # (backbones, heads)


def interpolate_resize(x, size):
    "The heads' resize before `resize_bilinear`: one `F.interpolate` kernel (its backward: atomic adds)."
    return F.interpolate(x.float(), size=tuple(size), mode="bilinear", align_corners=False)


def mean_ms(run, fn, n, warm=2):
    "Mean time of `fn` in ms over `n` calls after `warm` untimed ones (all timed as one span: host work included)."
    for _ in range(warm): fn()
    return run(lambda: [fn() for _ in range(n)]) / n


def profile_table(fn, dev, rows):
    "torch.profiler's summary of `fn`: the top ops by CUDA time on the GPU, by CPU time on the CPU."
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with torch.profiler.profile(activities=acts) as prof: fn()
    if dev.type == "cuda": torch.cuda.synchronize()
    key = "self_device_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="tiny ViT and small crops on the CPU: a check that it runs")
    ap.add_argument("--backbone", default="dinov2_small")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--images", type=int, default=32, help="synthetic samples (584 x 876, as ScanNet++ at half resolution)")
    ap.add_argument("--classes", type=int, default=100, help="segmentation classes (ScanNet++: 100)")
    ap.add_argument("--profile-rows", type=int, default=15)
    ap.add_argument("--precisions", default=",".join(PRECISIONS), help="a comma-separated subset of " + ", ".join(PRECISIONS))
    a = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() and not a.smoke else "cpu")
    if a.smoke:
        torch.set_num_threads(1)
        name, steps, batch, n, (h, w) = "tiny", 2, 2, 4, (84, 112)
        augs = dict(seg=SegAugment(scale=(224, 56), crop=(56, 56), stride=(37, 37), test_scale=(224, 56)),
                    depth=DepthAugment(crop=(56, 84)))
    else:
        name, steps, batch, n, (h, w) = a.backbone, a.steps, a.batch, a.images, (584, 876)
        augs = dict(seg=SegAugment(), depth=DepthAugment())
    t_start = time.perf_counter()
    torch.manual_seed(0)
    orig = load_backbone(name, pretrained=False, device=dev)
    tuned = copy.deepcopy(orig)
    samples = toy_probe_samples(n, h, w, k=3, cell=max(h // 6, 4), seed=0)   # float32 images, as fit3d.datasets reads
    run = timer(dev)
    out, tables = {}, []
    for task in ("seg", "depth"):
        aug = augs[task]
        for prec in a.precisions.split(","):
            bb_amp, head_amp = PRECISIONS[prec]
            sets = FeatureSets(orig, tuned, task, amp=bb_amp)
            kw = dict(batch_size=batch, progress=False, device=str(dev), amp=head_amp)
            cfg = ProbeConfig(**kw) if task == "seg" else DepthProbeConfig(**kw)
            loss = seg_loss_fn(cfg) if task == "seg" else depth_loss_fn(cfg)
            heads = lambda: _heads(sets, task, cfg, a.classes if task == "seg" else None)
            g = torch.Generator().manual_seed(0)
            old = _official_crops(samples, task, cfg, aug, dev, batched=False)
            new = _official_crops(samples, task, cfg, aug, dev, batched=True)
            x, t = new(g)                                           # the batch every measurement below shares
            r = dict(crop=list(x.shape[-2:]))
            r["bare_ms"] = mean_ms(run, lambda: sets.parts(x), steps)
            r["aug_old_ms"] = mean_ms(run, lambda: old(g), steps)
            r["aug_new_ms"] = mean_ms(run, lambda: new(g), steps)
            feats = {k: list(v) for k, v in sets(x).items()}
            fixed = lambda step, g, d: (feats, list(t))
            c = lambda it: type(cfg)(**{**cfg.__dict__, "iters": it})
            train = lambda b, it: fit_heads(heads(), b, loss, c(it), task)
            train(fixed, 2)                                         # warm-up: kernels chosen, handles made
            r["heads_ms"] = run(lambda: train(fixed, steps)) / steps
            probe_module.resize_bilinear = interpolate_resize   # `_forward` looks it up at each call
            try: train(fixed, 2); r["heads_interp_ms"] = run(lambda: train(fixed, steps)) / steps
            finally: probe_module.resize_bilinear = resize_bilinear
            if task == "seg":   # the loss resizing band by band (`upsampled_cross_entropy`), side by side
                probe_module.SEG_LOSS_LOW_RES = True
                try:
                    lb = seg_loss_fn(cfg)
                    fit_heads(heads(), fixed, lb, c(2), task)
                    r["heads_bands_ms"] = run(lambda: fit_heads(heads(), fixed, lb, c(steps), task)) / steps
                finally: probe_module.SEG_LOSS_LOW_RES = False
            for which, batched in (("old", False), ("new", True)):
                b = _official_batches(sets, samples, task, cfg, aug, batched)   # one: its samples stay on the device
                train(b, 2)                                                     # warm-up: every sample read once
                r[f"step_{which}_ms"] = run(lambda: train(b, steps)) / steps
            r["ratio_old"], r["ratio_new"] = r["bare_ms"] / r["step_old_ms"], r["bare_ms"] / r["step_new_ms"]
            r["rest_new_ms"] = r["step_new_ms"] - r["aug_new_ms"] - r["bare_ms"] - r["heads_ms"]
            tables.append((task, prec, profile_table(lambda: train(b, 3), dev, a.profile_rows)))
            out.setdefault(task, {})[prec] = r
    device = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    print(f"device: {device}; backbone {name} (random weights) twice (original + fine-tuned), 4 heads ({a.classes} "
          f"classes for seg); batch {batch}; crops seg {augs['seg'].crop}, depth {augs['depth'].crop}; {steps} timed "
          "steps each; ms per batch")
    cols = ("bare_ms", "aug_old_ms", "aug_new_ms", "heads_interp_ms", "heads_ms", "heads_bands_ms", "step_old_ms", "step_new_ms",
            "rest_new_ms")
    print(f"{'task':6s} {'precision':15s} " + " ".join(f"{c[:-3]:>{max(9, len(c) - 3)}s}" for c in cols)
          + f" {'bare/old':>9s} {'bare/new':>9s}")
    for task, by in out.items():
        for prec, r in by.items():
            print(f"{task:6s} {prec:15s} " + " ".join(f"{r.get(c, float('nan')):{max(9, len(c) - 3)}.1f}" for c in cols)
                  + f" {r['ratio_old']:9.2f} {r['ratio_new']:9.2f}")
    print("rest = step new - (aug new + bare + heads): host syncs, copies and what the parts do not overlap; "
          "goal bare/new >= 0.8")
    for task, prec, tab in tables:
        print(f"\n--- profile: {task}, {prec}, 3 new steps ---\n{tab}")
    print(f"total {time.perf_counter() - t_start:.0f} s")
    if os.environ.get("OUT"):
        Path(os.environ["OUT"]).mkdir(parents=True, exist_ok=True)
        (Path(os.environ["OUT"]) / "bench_protocol_step.json").write_text(json.dumps(
            dict(backbone=name, batch=batch, steps=steps, classes=a.classes, device=device, results=out), indent=1))


if __name__ == "__main__":
    main()
