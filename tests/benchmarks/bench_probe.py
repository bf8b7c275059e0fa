"""Time linear-probe training steps at reference sizes (GPU). Prints a table; writes nothing.

    python tests/benchmarks/bench_probe.py            # on the GPU, reference-like sizes
    python tests/benchmarks/bench_probe.py --small    # a quick run on the CPU
"""
import argparse, time
import torch
from fit3d.probe import ProbeConfig, DepthProbeConfig, train_seg_probe, train_depth_probe, eval_seg_probe, eval_depth_probe


def timed(fn):
    if torch.cuda.is_available(): torch.cuda.synchronize()
    t = time.perf_counter(); out = fn()
    if torch.cuda.is_available(): torch.cuda.synchronize()
    return out, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true", help="tiny sizes for a CPU smoke run")
    ap.add_argument("--iters", type=int, default=200)
    a = ap.parse_args()
    n, C, g, H, K = (8, 32, 8, 56, 10) if a.small else (64, 768, 37, 518, 150)
    iters = 10 if a.small else a.iters
    torch.manual_seed(0)
    feats = torch.randn(n, C, g, g, dtype=torch.float16)       # cached features live on the CPU in fp16
    labels = torch.randint(-1, K, (n, H, H))
    depths = torch.rand(n, H, H) * 9 + 0.5
    rows = []
    for amp in (True, False):
        cfg = ProbeConfig(iters=iters, batch_size=16 if not a.small else 4, amp=amp, progress=False)
        head, t = timed(lambda: train_seg_probe(feats, labels, K, cfg))
        _, te = timed(lambda: eval_seg_probe(head, feats, labels))
        rows.append((f"seg  C={C} {g}x{g} -> {H}x{H}, K={K}", amp, 1000 * t / iters, 1000 * te / n))
        dcfg = DepthProbeConfig(iters=iters, batch_size=16 if not a.small else 4, amp=amp, progress=False)
        head, t = timed(lambda: train_depth_probe(feats, depths, dcfg))
        _, te = timed(lambda: eval_depth_probe(head, feats, depths))
        rows.append((f"depth C={C} {g}x{g} x4 -> {H}x{H}, 256 bins", amp, 1000 * t / iters, 1000 * te / n))
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"device: {dev}; {iters} training steps each (first-step overheads included)")
    print(f"{'probe':48s} {'bf16':>5s} {'ms/step':>9s} {'eval ms/img':>12s}")
    for name, amp, ms, ems in rows: print(f"{name:48s} {str(amp):>5s} {ms:9.2f} {ems:12.2f}")


if __name__ == "__main__":
    main()
