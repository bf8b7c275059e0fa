"""Stage I benchmark: lifting time and held-out feature fidelity on a ScanNet++-sized synthetic room.

Runs, in one process on one scene with the same cached 2D features:
  fast       LiftConfig.fast()                      (ours: the default of `fit3d lift`)
  no-decoder LiftConfig.fast(decoder="none")        (Gaussians carry the full backbone width, no decoder)
  reference  LiftConfig() (the official schedule), stopped after --ref-steps steps; ms/step gives its 30k time
and prints time, steps, Gaussians, held-out PSNR, feature cosine / L1 at the patch grid for each.

GPU:  python tests/benchmarks/bench_lift.py --views 200 --width 876 --height 584
CPU smoke test:  python tests/benchmarks/bench_lift.py --quick
"""
import argparse, json, time
from dataclasses import replace
from pathlib import Path

import torch

from fit3d.formats import read_scene
from fit3d.features import load_backbone, extract_scene
from fit3d.lift import LiftConfig, lift, evaluate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--views", type=int, default=200)
    ap.add_argument("--test-views", type=int, default=20)
    ap.add_argument("--width", type=int, default=876)
    ap.add_argument("--height", type=int, default=584)
    ap.add_argument("--backbone", default="dinov2_small")
    ap.add_argument("--ref-steps", type=int, default=30000, help="steps of the reference schedule to run at most (0 = skip)")
    ap.add_argument("--ref-seconds", type=float, default=420, help="stop the reference run after about this long (its ms/step is measured first)")
    ap.add_argument("--eval-every", type=int, default=500, help="held-out evaluation every n steps (a fidelity-vs-time curve)")
    ap.add_argument("--fast-steps", type=int, default=0, help="override LiftConfig.fast().iterations")
    ap.add_argument("--variants", default="fast,no-decoder,reference")
    ap.add_argument("--out", default="/tmp/bench_lift")
    ap.add_argument("--quick", action="store_true", help="tiny CPU smoke test")
    a = ap.parse_args()
    if a.quick:
        a.views, a.test_views, a.width, a.height, a.backbone, a.ref_steps, a.fast_steps = 12, 2, 96, 72, "tiny", 20, 20
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    from fit3d.synthetic import make_scene
    t = time.perf_counter()
    scene = make_scene(out / "scene", seed=123, n_views=a.views, width=a.width, height=a.height, n_test=a.test_views, device=str(dev))
    scene = read_scene(out / "scene")
    t_scene = time.perf_counter() - t
    bb = load_backbone(a.backbone, pretrained=False, device=dev)
    t = time.perf_counter()
    feats = extract_scene(bb, scene, cache_dir=out / "features", progress=False)
    t_feat = time.perf_counter() - t
    print(f"scene: {len(scene)} views {a.width}x{a.height} ({len(scene.train)} train / {len(scene.test)} held out), "
          f"{len(scene.points)} points, generated in {t_scene:.1f} s; {bb.name} features {tuple(next(iter(feats.values())).shape)} in {t_feat:.1f} s")
    fast = LiftConfig.fast(**({"iterations": a.fast_steps} if a.fast_steps else {}))
    if a.quick: fast = LiftConfig.tiny(iterations=a.fast_steps)
    variants = dict(fast=(fast, None), **{"no-decoder": (replace(fast, decoder="none"), None)},
                    reference=(LiftConfig() if not a.quick else LiftConfig.tiny(iterations=100), a.ref_steps))
    if dev.type == "cuda":  # the first gsplat call loads (or compiles) its CUDA extension: keep that out of the timings
        from fit3d.raster import render, random_splats, orbit_cameras
        vm, K = orbit_cameras(1, 64, 48, device=dev)
        render(random_splats(100, 8, 1, device=dev), vm, K, 64, 48); torch.cuda.synchronize()
    rows = []
    for name in a.variants.split(","):
        cfg, max_steps = variants[name]
        if name == "reference" and not a.ref_steps: continue
        if name == "reference" and a.ref_seconds:
            probe = lift(scene, feats, cfg, device=dev, progress=False, max_steps=300)
            ms = probe.meta["seconds"] / 300
            max_steps = min(max_steps, int(a.ref_seconds / ms) // a.eval_every * a.eval_every or a.eval_every)
            print(f"reference: {1000 * ms:.1f} ms/step over the first 300 steps -> running {max_steps} steps")
        if dev.type == "cuda": torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        lifted = lift(scene, feats, cfg, device=dev, progress=False, max_steps=max_steps,
                      eval_every=a.eval_every if name != "no-decoder" else 0)
        secs = lifted.meta["seconds"]  # training time, held-out evaluations excluded
        m = evaluate(lifted, scene, feats, scale=cfg.render_scale, device=dev, multiview=True)
        steps = lifted.meta["steps"]
        row = dict(variant=name, steps=steps, seconds=secs, ms_per_step=1000 * secs / steps,
                   full_schedule_s=secs / steps * cfg.iterations, n_gaussians=lifted.meta["n_gaussians"],
                   peak_gb=torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else float("nan"), **m)
        rows.append(row); print(json.dumps(row))
        for e in lifted.meta["evals"]:
            print(f"  {name:<10} step {e['step']:>6}  {e['seconds']:7.1f} s  n={e['n']:>8}  PSNR {e['psnr']:6.2f}  f-cos {e['feature_cosine']:.4f}  f-L1 {e['feature_l1']:.4f}")
        row["evals"] = lifted.meta["evals"]
    (out / "bench_lift.json").write_text(json.dumps(rows, indent=1))
    print(f"\n{'variant':<11} {'steps':>6} {'time s':>8} {'ms/step':>8} {'sched. s':>9} {'gauss.':>8} {'GB':>5} {'PSNR':>6} {'f-cos':>6} {'f-L1':>6}")
    for r in rows:
        print(f"{r['variant']:<11} {r['steps']:>6} {r['seconds']:>8.1f} {r['ms_per_step']:>8.1f} {r['full_schedule_s']:>9.0f} "
              f"{r['n_gaussians']:>8} {r['peak_gb']:>5.1f} {r['psnr']:>6.2f} {r['feature_cosine']:>6.3f} {r['feature_l1']:>6.3f}")


if __name__ == "__main__":
    main()
