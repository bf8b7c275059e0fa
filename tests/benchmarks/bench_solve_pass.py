"""Depth objective of fit3d.solve: one forward pass with every chunk's graph kept (sets up to `ONE_PASS` head outputs)
against two passes (sums without graphs, then chunk by chunk), on a problem the size of the CPU demo's ViT-S/14 depth
probe (48 maps of 768 channels on a 16 x 12 grid, 256 bins). Prints the time of one objective+gradient each way, their
ratio, and that value and gradient agree.

    python tests/benchmarks/bench_solve_pass.py
"""
import time, torch, numpy as np
import fit3d.solve as S
from fit3d.probe import DepthHead, DepthProbeConfig
torch.manual_seed(0); torch.set_num_threads(2)
feats = [torch.randn(768, 12, 16) for _ in range(48)]          # the CPU demo's depth input: ViT-S patch + CLS, 16 x 12 grid
targets = [torch.rand(168, 224) * 5 + 0.5 for _ in range(48)]
cfg = DepthProbeConfig(device="cpu", progress=False)
p = S.HeadProblem(DepthHead(768), feats, targets, "depth", cfg, torch.device("cpu"), cfg.solve_scale)
x = p.x0() + 0.01 * np.random.default_rng(0).standard_normal(len(p.x0()))
out = {}
for name, budget in (("one pass", 1 << 26), ("two passes", 0)):
    S.ONE_PASS = budget; S.value_grad(p, x); t = time.perf_counter()
    for _ in range(5): v, g = S.value_grad(p, x)
    out[name] = ((time.perf_counter() - t) / 5, v, g)
print({k: f"{t * 1000:.0f} ms" for k, (t, _, _) in out.items()}, f"ratio {out['two passes'][0] / out['one pass'][0]:.2f}x",
      "same value", abs(out['one pass'][1] - out['two passes'][1]) < 1e-9, "same gradient", np.allclose(out['one pass'][2], out['two passes'][2], rtol=1e-5, atol=1e-9))
