"""Feature rasterisation on the GPU: parity of fit3d's PyTorch rasteriser with gsplat, and what feature width costs.

(1) Parity. Random scenes (3,000 Gaussians, 2 cameras at 160x120, several seeds, feature widths and options) rendered
    by both backends of fit3d.raster.render on CUDA tensors: forward mean/max abs error of rgb, features, alpha and
    depth*alpha, relative L2 error of the gradient of every parameter; PASS/FAIL against fit3d.raster.PARITY_TOL.
(2) Forward+backward time against the feature width D (0, 16, 32, 64, 128, 384) at 300k Gaussians, 876x584, one
    camera. The loss is L1 of rgb and features against random targets plus a small depth term. Channel layouts:
      auto      render(channel_chunk=None, feature_grad_geometry=True): fit3d's rule auto_channel_chunk(D), one call
      fused     one kernel for all D+4 channels (gsplat pads to its next compiled size)
      chunk32   gsplat's default channel_chunk=32
      split64   features in 64-channel kernels, then rgb+depth in a 4-channel one (shared projection and sort)
      split128  the same with 128-channel kernels
      detached  render()'s default (feature_grad_geometry=False, the official gradient routing): an rgb+ED call,
                then a features call over detached geometry, each projecting and sorting (what lifting runs)
    The coupled layouts (all but "detached") let the feature loss move the geometry, as Feature-3DGS does.
(3) Decoder path (render's default routing): render 64-d features + 3x3 conv without bias to 384 + L1, against rendering 384 channels + L1.
CUDA events, warm-up, median of repeats; peak memory above the scene's own tensors. Writes nothing.

    PYTHONPATH=/tmp/site:. python tests/benchmarks/bench_raster.py            # H100 (first call compiles gsplat)
    PYTHONPATH=/tmp/site:. python tests/benchmarks/bench_raster.py --quick    # small sizes, a smoke run
Without CUDA only the PyTorch backend is timed (small sizes).
"""
import argparse, statistics, time

import torch
import torch.nn.functional as F

from fit3d.raster import (PARITY_TOL, auto_channel_chunk, backend_errors, orbit_cameras, parity_failures,
                          random_splats, render)


from _timing import timer  # noqa: E402  (beside this script)


def measure(fn, dev, warmup, repeats):
    "(median ms, peak MiB allocated above the starting point) of `fn`."
    run = timer(dev)
    for _ in range(warmup): fn()
    if dev.type == "cuda": torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
    ms = statistics.median(run(fn) for _ in range(repeats))
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if dev.type == "cuda" else float("nan")
    return ms, peak


def parity(dev, n, W, H, seeds):
    cases = [(s, d, kw) for s in range(seeds) for d, kw in
             [(32, {}), (64, {}), (5, dict(packed=True)), (0, dict(sh_degree=1)), (64, dict(channel_chunk=68))]]
    print(f"\n(1) parity torch vs gsplat: {n} Gaussians, 2 cameras {W}x{H}; tolerances {PARITY_TOL}")
    keys, bad = None, 0
    for seed, d, kw in cases:
        sp = random_splats(n, d, 3, seed=seed, device=dev)
        errs = backend_errors(sp, *orbit_cameras(2, W, H, device=dev), W, H, seed=seed, **kw)
        if keys is None:
            keys = list(errs)
        fails = parity_failures(errs); bad += bool(fails)
        print(f"seed {seed} D {d:3d} {str(kw):22s} " + " ".join(f"{k}={errs.get(k, float('nan')):.1e}" for k in keys)
              + ("  PASS" if not fails else "  FAIL " + ", ".join(fails)))
    sp = random_splats(n, 64, 3, seed=0, device=dev); vm, K = orbit_cameras(2, W, H, device=dev)
    for b in ("gsplat", "torch"):
        def step():
            o = render(sp, vm, K, W, H, backend=b); (o.rgb.mean() + o.features.abs().mean()).backward()
        ms, _ = measure(step, dev, 2, 5)
        print(f"  {b:6s} backend, D=64, fwd+bwd: {ms:.1f} ms")
    return bad


def timing(dev, n, W, H, widths, warmup, repeats, gpu):
    print(f"\n(2) forward+backward vs feature width: {n} Gaussians, 1 camera {W}x{H}, median of {repeats}")
    vm, K = orbit_cameras(1, W, H, device=dev)
    print(f"{'D':>4s} {'layout':10s} {'chunk':>5s} {'ms':>8s} {'peak MiB':>9s}")
    for d in widths:
        sp = random_splats(n, d, 3, seed=0, device=dev)
        g = torch.Generator(device=dev).manual_seed(1)
        t_rgb = torch.rand(1, H, W, 3, device=dev, generator=g)
        t_f = torch.randn(1, H, W, d, device=dev, generator=g) if d else None
        def loss_of(rgb, feats, depth):
            l = (rgb - t_rgb).abs().mean() + 1e-3 * depth.mean()
            return l + (feats - t_f).abs().mean() if d else l
        def with_chunk(chunk):
            def step():
                detached = chunk == "detached"
                o = render(sp, vm, K, W, H, channel_chunk=None if detached else chunk, feature_grad_geometry=not detached)
                loss_of(o.rgb, o.features, o.depth).backward()
                for p in sp.values(): p.grad = None
            return step
        layouts = {"auto": auto_channel_chunk(d) if gpu else "-"}
        if gpu:   # the other layouts, each only where it differs from those before it
            for name, chunk in [("fused", d + 4), ("chunk32", 32), ("split64", min(d, 64)), ("split128", min(d, 128))]:
                # one kernel of more than 68 channels segfaulted in gsplat 1.5.3 on the H100 (D=128 fused, 132 channels)
                if name == "fused" and chunk > 68: continue
                if chunk > 0 and chunk not in layouts.values() and not (name == "chunk32" and d + 4 <= 32):
                    layouts[name] = chunk
        layouts["detached"] = "detached"
        for name, chunk in layouts.items():
            fn = with_chunk(chunk if gpu or chunk == "detached" else None)
            ms, peak = measure(fn, dev, warmup, repeats)
            print(f"{d:4d} {name:10s} {chunk:>5} {ms:8.2f} {peak:9.0f}", flush=True)
        del sp


def decoder_path(dev, n, W, H, warmup, repeats, width=384, low=64):
    print(f"\n(3) decoder path: {n} Gaussians, 1 camera {W}x{H}, target width {width}")
    vm, K = orbit_cameras(1, W, H, device=dev)
    g = torch.Generator(device=dev).manual_seed(2)
    t_rgb, target = torch.rand(1, H, W, 3, device=dev, generator=g), torch.randn(1, width, H, W, device=dev, generator=g)
    conv = torch.nn.Conv2d(low, width, 3, padding=1, bias=False).to(dev)
    sp_low, sp_full = random_splats(n, low, 3, device=dev), random_splats(n, width, 3, device=dev)
    def decoded():
        o = render(sp_low, vm, K, W, H)
        ((o.rgb - t_rgb).abs().mean() + (conv(o.features.permute(0, 3, 1, 2)) - target).abs().mean()).backward()
        for p in [*sp_low.values(), *conv.parameters()]: p.grad = None
    def direct():
        o = render(sp_full, vm, K, W, H)
        ((o.rgb - t_rgb).abs().mean() + (o.features.permute(0, 3, 1, 2) - target).abs().mean()).backward()
        for p in sp_full.values(): p.grad = None
    def decode_only():
        f = torch.randn(1, low, H, W, device=dev, requires_grad=True)
        (conv(f) - target).abs().mean().backward(); conv.weight.grad = None
    print(f"{'path':34s} {'ms':>8s} {'peak MiB':>9s}")
    for name, fn in [(f"render {low} + conv3x3 -> {width} + L1", decoded), (f"render {width} + L1", direct),
                     (f"  (conv3x3 {low}->{width} + L1 alone)", decode_only)]:
        ms, peak = measure(fn, dev, warmup, repeats)
        print(f"{name:34s} {ms:8.2f} {peak:9.0f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument("--n", type=int, default=300_000, help="Gaussians for the timing")
    ap.add_argument("--size", type=int, nargs=2, default=(876, 584), metavar=("W", "H"))
    ap.add_argument("--widths", type=int, nargs="+", default=[0, 16, 32, 64, 128, 384])
    ap.add_argument("--seeds", type=int, default=3, help="seeds of the parity scenes")
    ap.add_argument("--repeats", type=int, default=20)
    a = ap.parse_args()
    gpu = torch.cuda.is_available()
    dev = torch.device("cuda" if gpu else "cpu")
    (W, H), n, warmup, repeats = a.size, a.n, 3, a.repeats
    pn, pW, pH = 3000, 160, 120
    if a.quick or not gpu:
        W, H, n, warmup, repeats, pn, pW, pH = 219, 146, 20_000, 1, 3, 500, 80, 60
        if not gpu: W, H, n = 80, 60, 5000
    import gsplat
    print(f"device {torch.cuda.get_device_name() if gpu else 'cpu'}, torch {torch.__version__}, gsplat {gsplat.__version__}")
    bad = parity(dev, pn, pW, pH, a.seeds) if gpu else 0
    timing(dev, n, W, H, a.widths, warmup, repeats, gpu)
    decoder_path(dev, n, W, H, warmup, repeats)
    if bad: print(f"\n{bad} parity case(s) FAILED"); raise SystemExit(1)


if __name__ == "__main__":
    main()
