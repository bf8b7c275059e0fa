"""Stage I benchmark: the official schedule (`reference`) against ours (`fast`), and what each difference costs.

One synthetic room, one set of cached 2D features, every variant lifted with the held-out views kept out:
  reference          LiftConfig(holdout=True): the official code's settings, stopped after --ref-steps steps
                     (its full 30k-step time is extrapolated from its ms/step; the table says where it stopped)
  fast               LiftConfig.fast(holdout=True)
  fast-coupled       fast with feature_grad_geometry=True (the feature loss also moves geometry, Feature-3DGS' way)
  reference-coupled  the reference with feature_grad_geometry=True, stopped like the reference
and, with --ablations, `fast` with one group of its settings reverted to the reference's (fit3d.lift.PRESET_GROUPS):
  fast+resolution, fast+views per step, fast+feature lrs (and fast+init points when the scene has more points than
  fast keeps). Each reports Stage I training time (held-out evaluations excluded), held-out PSNR, feature cosine and
  L1 at the patch grid, and multi-view agreement: the cosine of rendered features at true correspondences between a
  held-out view and its nearest training views (and the same for the 2D features).

Writes bench_lift.json (rows, "ablations" = per-group change against fast, "coupling" = change from letting the
features move the geometry) to $OUT if set, else --out. Copy it to nbs/data/bench_lift.json to fill the measured
columns of the preset table in nbs/05_lift.ipynb.

GPU (one H200, ~8 min):  python tests/benchmarks/bench_lift.py --views 120 --width 876 --height 584 --no-pretrained
GPU ablations (~5 min):  python tests/benchmarks/bench_lift.py --views 120 --width 876 --height 584 --no-pretrained \\
                             --variants fast --ablations
CPU smoke test (seconds): python tests/benchmarks/bench_lift.py --smoke
"""
import argparse, json, os, time
from dataclasses import replace
from pathlib import Path

import torch

from fit3d.formats import read_scene
from fit3d.features import load_backbone, extract_scene
from fit3d.lift import LiftConfig, PRESET_GROUPS, lift, evaluate
from fit3d.store import write_json

METRICS = ("psnr", "feature_cosine", "feature_l1", "multiview_cos_rendered")


def delta(row, base):
    "Change of every metric and of the time from `base` to `row`."
    d = {f"d_{k}": row[k] - base[k] for k in METRICS if k in row and k in base}
    return d | dict(d_seconds=row["seconds"] - base["seconds"], d_full_schedule_s=row["full_schedule_s"] - base["full_schedule_s"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--views", type=int, default=120)
    ap.add_argument("--test-views", type=int, default=12)
    ap.add_argument("--width", type=int, default=876)
    ap.add_argument("--height", type=int, default=584)
    ap.add_argument("--backbone", default="dinov2_small")
    ap.add_argument("--no-pretrained", action="store_true", help="random backbone weights (no download)")
    ap.add_argument("--ref-steps", type=int, default=3000, help="stop the reference variants after this many steps")
    ap.add_argument("--eval-every", type=int, default=1000, help="held-out evaluation every n steps (a curve)")
    ap.add_argument("--variants", default="reference,fast,fast-coupled,reference-coupled")
    ap.add_argument("--ablations", action="store_true", help="also fast with each group reverted to the reference")
    ap.add_argument("--out", default="/tmp/bench_lift")
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run (seconds)")
    a = ap.parse_args()
    small = {}
    if a.smoke:
        a.views, a.test_views, a.width, a.height, a.backbone, a.ref_steps, a.eval_every = 8, 2, 48, 36, "tiny", 6, 3
        small = dict(feature_dim=8, sh_degree=1, max_init_points=300, near_plane=0.01, iterations=6, refine_start=2,
                     refine_stop=5, refine_every=2, reset_every=4, sh_degree_interval=3)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(os.environ.get("OUT") or a.out); out.mkdir(parents=True, exist_ok=True)
    work = Path(a.out); work.mkdir(parents=True, exist_ok=True)
    from fit3d.synthetic import make_scene
    t = time.perf_counter()
    make_scene(work / "scene", seed=123, n_views=a.views, width=a.width, height=a.height, n_test=a.test_views,
               device=str(dev), n_points=300 if a.smoke else 4000)
    scene = read_scene(work / "scene")
    t_scene = time.perf_counter() - t
    bb = load_backbone(a.backbone, pretrained=not a.no_pretrained and a.backbone != "tiny", device=dev)
    t = time.perf_counter()
    feats = extract_scene(bb, scene, cache_dir=work / "features", progress=False)
    t_feat = time.perf_counter() - t
    print(f"scene: {len(scene)} views {a.width}x{a.height} ({len(scene.train)} train / {len(scene.test)} held out), "
          f"{len(scene.points)} points, made in {t_scene:.1f} s; {bb.name} features "
          f"{tuple(next(iter(feats.values())).shape)} in {t_feat:.1f} s; device {dev}")
    ref = LiftConfig(holdout=True, **small)
    fast = LiftConfig.fast(holdout=True, **small)
    variants = {"reference": (ref, a.ref_steps), "fast": (fast, None),
                "fast-coupled": (replace(fast, feature_grad_geometry=True), None),
                "reference-coupled": (replace(ref, feature_grad_geometry=True), a.ref_steps)}
    names = [n for n in a.variants.split(",") if n]
    if a.ablations:
        for g, keys in PRESET_GROUPS.items():
            if g == "schedule": continue                     # measured by the reference run itself
            if g == "init points" and len(scene.points) <= (fast.max_init_points or 0):
                print(f"skipping fast+{g}: the scene has {len(scene.points)} points, fewer than fast keeps"); continue
            variants[f"fast+{g}"] = (replace(fast, **{k: getattr(ref, k) for k in keys}), None)
            names.append(f"fast+{g}")
        if "fast" not in names: names.insert(0, "fast")
    if dev.type == "cuda":  # the first gsplat call loads (or compiles) its CUDA extension: keep it out of the timings
        from fit3d.raster import load_gsplat
        load_gsplat(dev)
        for cfg in (ref, fast):  # and the first steps at each resolution / batch (allocator, cuDNN) out of them too
            lift(scene, feats, cfg, device=dev, progress=False, max_steps=20); torch.cuda.synchronize()
    rows = {}
    for name in names:
        cfg, max_steps = variants[name]
        if dev.type == "cuda": torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        lifted = lift(scene, feats, cfg, device=dev, progress=False, max_steps=max_steps,
                      eval_every=a.eval_every if max_steps else None)
        secs, steps = lifted.meta["seconds"], lifted.meta["steps"]
        m = evaluate(lifted, scene, feats, scale=cfg.render_scale, device=dev, multiview=True)
        row = dict(variant=name, steps=steps, of_steps=cfg.iterations, stopped_early=steps < cfg.iterations,
                   seconds=secs, ms_per_step=1000 * secs / steps, full_schedule_s=secs / steps * cfg.iterations,
                   n_gaussians=lifted.meta["n_gaussians"], evals=lifted.meta["evals"],
                   peak_gb=torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None, **m)
        rows[name] = row
        write_json(out / "bench_lift.json", dict(partial=True, rows=list(rows.values())))  # a killed run keeps its rows
        print(f"{name}: {steps} steps in {secs:.1f} s, PSNR {m['psnr']:.2f}, f-cos {m['feature_cosine']:.4f}, "
              f"mv-cos {m.get('multiview_cos_rendered', float('nan')):.4f}", flush=True)
        if row["stopped_early"]: print(f"{name}: stopped at step {steps} of {cfg.iterations} (--ref-steps)")
        for e in row["evals"]:
            print(f"  {name:<18} step {e['step']:>6} {e['seconds']:7.1f} s n={e['n']:>8} PSNR {e['psnr']:6.2f} "
                  f"f-cos {e['feature_cosine']:.4f} f-L1 {e['feature_l1']:.4f}")
    ablations, coupling = {}, {}
    if "fast" in rows:
        for g in PRESET_GROUPS:
            n = "reference" if g == "schedule" else f"fast+{g}"
            if n in rows: ablations[g] = delta(rows[n], rows["fast"]) | dict(variant=n, steps=rows[n]["steps"])
    for base in ("fast", "reference"):
        if base in rows and f"{base}-coupled" in rows: coupling[base] = delta(rows[f"{base}-coupled"], rows[base])
    res = dict(device=torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", backbone=bb.name,
               pretrained=not a.no_pretrained and a.backbone != "tiny", views=a.views, test_views=a.test_views,
               width=a.width, height=a.height, ref_steps=a.ref_steps, rows=list(rows.values()),
               ablations=ablations, coupling=coupling)
    write_json(out / "bench_lift.json", res)
    print(f"\n{'variant':<18} {'steps':>11} {'time s':>7} {'ms/step':>8} {'30k/3k s':>9} {'gauss.':>8} {'GB':>5} "
          f"{'PSNR':>6} {'f-cos':>6} {'f-L1':>6} {'mv-cos':>6} {'mv-2D':>6}")
    for r in rows.values():
        gb = f"{r['peak_gb']:.1f}" if r["peak_gb"] is not None else "-"
        print(f"{r['variant']:<18} {r['steps']:>5}/{r['of_steps']:<5} {r['seconds']:>7.1f} {r['ms_per_step']:>8.1f} "
              f"{r['full_schedule_s']:>9.0f} {r['n_gaussians']:>8} {gb:>5} {r['psnr']:>6.2f} {r['feature_cosine']:>6.3f} "
              f"{r['feature_l1']:>6.3f} {r.get('multiview_cos_rendered', float('nan')):>6.3f} {r.get('multiview_cos_2d', float('nan')):>6.3f}")
    for title, d in (("effect of each fast setting (variant - fast)", ablations), ("effect of coupling (coupled - base)", coupling)):
        if d: print(f"\n{title}:"); [print(f"  {k:<16} " + ", ".join(f"{m} {v:+.4g}" for m, v in x.items() if isinstance(v, float))) for k, x in d.items()]
    print(f"\nwrote {out / 'bench_lift.json'}")


if __name__ == "__main__":
    main()
