"""The plan's clock against a measured run: `fit3d reproduce` on a small synthetic ScanNet++ release, the plan's estimate
of every stage beside the wall seconds the run recorded in its timings.json, their ratio, and whether each is within
15% (issue 23, §3). Writes JSON to $OUT/bench_reproduce_clock.json when $OUT is set.

    python tests/benchmarks/bench_reproduce_clock.py            # GPU: 2 scenes of 876x584 views, `fast` Stage I with
                                                                # fewer steps, ViT-S/14 (random weights time the same),
                                                                # official ScanNet++ probes of 300 steps
    python tests/benchmarks/bench_reproduce_clock.py --smoke    # CPU: tiny ViT, tiny sizes, quick probes (checks it runs)

With `--probe-rates A.json B.json` (two `bench_protocol_step.py` records of the same device at two class counts) the
plan is also priced with the probe step rates measured there, and both comparisons are printed.
"""
import argparse, json, os, tempfile, time
from dataclasses import replace
from pathlib import Path

import torch

from fit3d.lift import LiftConfig
from fit3d.reproduce import RATES, ReproduceConfig, plan, print_plan, reproduce, device_name
from fit3d.synthetic_scannetpp import make_scannetpp_tree


def probe_rates(paths: list) -> dict:
    "Set RATES' official probe steps from two bench_protocol_step.py records (classes k1, k2): a line in the classes."
    from fit3d.reproduce import RATES
    recs = sorted((json.loads(Path(p).read_text()) for p in paths), key=lambda r: r["classes"])
    (k1, s1), (k2, s2) = ((r["classes"], r["results"]["seg"]["bf16"]["step_new_ms"] / 1e3) for r in recs)
    if k1 == k2: raise SystemExit(f"--probe-rates: both records have {k1} classes")
    per = (s2 - s1) / (k2 - k1)
    RATES.update(probe_seg_class=per, probe_seg_step=s2 - k2 * per,
                 probe_depth_step=sum(r["results"]["depth"]["bf16"]["step_new_ms"] for r in recs) / 2e3)
    return {k: RATES[k] for k in ("probe_seg_step", "probe_seg_class", "probe_depth_step")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="tiny backbone and sizes, on the CPU")
    ap.add_argument("--scenes", type=int, default=2, help="training scenes lifted and fine-tuned on")
    ap.add_argument("--views", type=int, default=40, help="DSLR views per scene (training + test)")
    ap.add_argument("--width", type=int, default=876, help="view width as written (the reader keeps 876x584 as it is)")
    ap.add_argument("--height", type=int, default=584)
    ap.add_argument("--iterations", type=int, default=1500, help="Stage I steps per scene (`fast` preset otherwise)")
    ap.add_argument("--probe-iters", type=int, default=300, help="official probe steps per task")
    ap.add_argument("--finetune-epochs", type=int, default=5,
                    help="Stage II epochs (the paper: 1 over thousands of views; more here so that its rate, not its start, is timed)")
    ap.add_argument("--no-warmup", action="store_true", help="time the first run as it comes (gsplat's CUDA build included)")
    ap.add_argument("--protocol", default="official", choices=("official", "quick"), help="the probes' protocol")
    ap.add_argument("--backbone", default="dinov2_small")
    ap.add_argument("--dir", default=None, help="where to write the tree and the run (default: a temporary folder)")
    ap.add_argument("--probe-rates", nargs=2, default=None, metavar="JSON",
                    help="two bench_protocol_step.py records of this device at two class counts: the plan's probe "
                         "step rates taken from them (bf16, the batched step) instead of RATES'")
    a = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() and not a.smoke else "cpu"
    if a.smoke:
        # the official probes' 512 crops at batch 16 take about 90 s a step on a CPU: the smoke run probes quickly
        a.backbone, a.views, a.width, a.height, a.iterations, a.probe_iters, a.protocol = "tiny", 6, 48, 36, 20, 3, "quick"
        lift = LiftConfig.tiny(iterations=a.iterations)
    else:  # `fast`, its densification window shortened in proportion to the steps
        f = LiftConfig.fast()
        k = a.iterations / f.iterations
        lift = replace(f, iterations=a.iterations, refine_start=round(f.refine_start * k), refine_stop=round(f.refine_stop * k))
    work = Path(a.dir or tempfile.mkdtemp(prefix="bench_clock_"))
    t = time.perf_counter()
    make_scannetpp_tree(work / "scannetpp", n_train=a.scenes, n_val=1, views=a.views, width=a.width, height=a.height,
                        device=dev)
    print(f"tree: {a.scenes} + 1 scenes x {a.views} views of {a.width}x{a.height} in {time.perf_counter() - t:.1f} s "
          f"({work / 'scannetpp'})")
    cfg = ReproduceConfig(root=work / "scannetpp", out=work / "runs", backbone=a.backbone, pretrained=False,
                          max_scenes=a.scenes, datasets=("scannetpp",), protocol=a.protocol, probe_iters=a.probe_iters,
                          finetune_epochs=a.finetune_epochs, device=dev, lift=lift)
    if not a.no_warmup:  # one-time costs (gsplat's CUDA build, cuDNN autotuning, first kernels) are no stage's rate
        t = time.perf_counter()
        make_scannetpp_tree(work / "warm", n_train=1, n_val=1, views=6, width=64, height=48, device=dev)
        reproduce(replace(cfg, root=work / "warm", out=work / "warm_runs", max_scenes=1, probe_iters=2, finetune_epochs=1,
                          lift=replace(lift, iterations=20, refine_start=5, refine_stop=10)))
        print(f"warm-up run (untimed by the comparison): {time.perf_counter() - t:.1f} s")
    rows = {"RATES": plan(cfg)}   # the committed rates; and those of this device's step records, if given
    if a.probe_rates:             # priced before the run (a finished stage prices at 0), then the committed rates back
        kept = dict(RATES)
        print("probe rates from this device:", probe_rates(a.probe_rates)); rows["this device"] = plan(cfg)
        RATES.update(kept)
    print_plan(rows["RATES"], cfg)
    t = time.perf_counter()
    table = reproduce(cfg)        # with the committed rates, as `fit3d reproduce` runs
    total = time.perf_counter() - t
    timings = json.loads((table.parent / "timings.json").read_text())
    print(f"\ndevice: {device_name(dev)}; backbone {a.backbone} (random weights); reproduce() took {total:.1f} s in all")
    out = {name: (print(f"\nestimates from {name}:"), compare(rs, timings))[1] for name, rs in rows.items()}
    if os.environ.get("OUT"):
        Path(os.environ["OUT"]).mkdir(parents=True, exist_ok=True)
        (Path(os.environ["OUT"]) / "bench_reproduce_clock.json").write_text(json.dumps(dict(
            device=device_name(dev), backbone=a.backbone, scenes=a.scenes, views=a.views, size=[a.width, a.height],
            finetune_epochs=a.finetune_epochs, lift=dict(iterations=lift.iterations, render_scale=lift.render_scale, batch_views=lift.batch_views),
            probe_iters=a.probe_iters, reproduce_s=total, stages=out["RATES"], stages_this_device=out.get("this device"),
            timings=timings), indent=1))


def compare(rows: list, timings: dict) -> list:
    "Print each stage's estimate beside its measured seconds, their ratio and whether it is within 15%; return them."
    out = []
    print(f"{'stage':22s} {'estimate s':>11s} {'measured s':>11s} {'meas/est':>9s}  within 15%  (measured - estimate s)")
    for r in rows:
        m = timings["stages"].get(r["stage"], {}).get("seconds")
        est = r["seconds"]
        ratio = m / est if m is not None and est else None
        ok = ratio is not None and abs(ratio - 1) <= 0.15
        out.append(dict(stage=r["stage"], work=r["work"], estimate_s=est, measured_s=m, ratio=ratio, within_15=ok))
        print(f"{r['stage']:22s} {est if est is not None else float('nan'):11.1f} "
              f"{m if m is not None else float('nan'):11.1f} {ratio or float('nan'):9.2f}  {'yes' if ok else 'NO ':10s}"
              f"  {(m or 0) - (est or 0):+.1f}")
    est_all = sum(r["seconds"] or 0 for r in rows)
    meas_all = sum(timings["stages"][r["stage"]]["seconds"] for r in rows if r["stage"] in timings["stages"])
    print(f"{'all stages':22s} {est_all:11.1f} {meas_all:11.1f} {meas_all / est_all:9.2f}  "
          f"{'yes' if abs(meas_all / est_all - 1) <= 0.15 else 'NO'}")
    return out


if __name__ == "__main__":
    main()
