"""Where a Stage I step of a small (224x168) room goes, on one GPU: `python tests/benchmarks/profile_lift.py`.

Measures `LiftConfig.fast` on synthetic rooms with fit3d_tiny features: one room for 2000 steps (time per 100 steps and
the number of Gaussians), a torch.profiler window (CUDA time and launches a step, the top kernels), then four rooms
for 1000 steps lifted in turn, in four threads on their own CUDA streams, and in four processes, and 2 vs 4 views a
step and full vs half resolution. Writes $OUT/profile_lift.json (default /tmp/out). CUDA only."""
import json, os, sys, time, threading, subprocess
import torch
from pathlib import Path
from fit3d.synthetic import make_benchmark
from fit3d.formats import read_scene
from fit3d.features import load_backbone, extract_scene
from fit3d.lift import LiftConfig, lift
from fit3d.raster import load_gsplat
dev = torch.device("cuda"); OUT = Path(os.environ.get("OUT", "/tmp/out")); OUT.mkdir(parents=True, exist_ok=True)
root = Path("/tmp/prof"); R = {}
mode = sys.argv[1] if len(sys.argv) > 1 else "main"
bench = make_benchmark(root / "data", n_train_scenes=4, n_val_scenes=0, n_views=32, width=224, height=168, device="cuda", progress=False)
bb = load_backbone("fit3d_tiny", device=dev).eval()
scenes = [read_scene(p) for p in bench["train"]]
feats = [extract_scene(bb, s, cache_dir=root / "feat", progress=False) for s in scenes]
load_gsplat(dev)
def run(i, steps, cfg=None, stream=None, marks=None):
    cfg = cfg or LiftConfig.fast(iterations=2000, checkpoint_every=None)
    cb = None
    if marks is not None:
        def cb(step, splats):
            if step % 100 == 99: torch.cuda.synchronize(); marks.append((step + 1, time.perf_counter(), len(splats["means"])))
    ctx = torch.cuda.stream(stream) if stream is not None else torch.cuda.stream(torch.cuda.current_stream())
    with ctx:
        return lift(scenes[i], feats[i], cfg, device=dev, progress=False, max_steps=steps, callback=cb)
if mode == "proc":   # one process of a concurrent group
    t = time.perf_counter(); run(int(sys.argv[2]), 1000); torch.cuda.synchronize()
    print(json.dumps(dict(i=int(sys.argv[2]), s=time.perf_counter() - t))); sys.exit()
run(0, 50); torch.cuda.synchronize()   # warm-up
marks = []; t0 = time.perf_counter(); run(0, 2000, marks=marks); t1 = time.perf_counter()
R["single_2000_s"] = t1 - t0
R["per100"] = [(s, round((t - (marks[k-1][1] if k else t0)) * 10, 2), n) for k, (s, t, n) in enumerate(marks)]
print("single:", R["single_2000_s"], R["per100"], flush=True)
# profile steps 1000-1050 of a fresh lift: CUDA kernel time vs wall
from torch.profiler import profile, ProfilerActivity
class Prof:
    p = None
def cbp(step, splats):
    if step == 1000: torch.cuda.synchronize(); Prof.p = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]); Prof.p.__enter__(); Prof.t = time.perf_counter()
    if step == 1050: torch.cuda.synchronize(); Prof.w = time.perf_counter() - Prof.t; Prof.p.__exit__(None, None, None)
lift(scenes[1], feats[1], LiftConfig.fast(iterations=2000, checkpoint_every=None), device=dev, progress=False, max_steps=1051, callback=cbp)
ka = Prof.p.key_averages()
cuda_total = sum(e.self_device_time_total for e in ka) / 1e3
R["prof_wall_ms_per_step"] = Prof.w * 1000 / 50; R["prof_cuda_ms_per_step"] = cuda_total / 50
top = sorted(ka, key=lambda e: -e.self_device_time_total)[:15]
R["top_kernels"] = [(e.key[:80], round(e.self_device_time_total / 1e3 / 50, 3), e.count // 50) for e in top]
R["n_launch_per_step"] = sum(e.count for e in ka if e.self_device_time_total > 0) / 50
print(json.dumps({k: R[k] for k in ("prof_wall_ms_per_step", "prof_cuda_ms_per_step", "n_launch_per_step")}), flush=True)
for k in R["top_kernels"]: print(k, flush=True)
# threads with their own streams: 4 rooms x 1000 steps
for K in (1, 4):
    ts = [threading.Thread(target=run, args=(i, 1000, None, torch.cuda.Stream())) for i in range(K)]
    t = time.perf_counter(); [x.start() for x in ts]; [x.join() for x in ts]; torch.cuda.synchronize()
    R[f"threads{K}_1000_s"] = time.perf_counter() - t; print(f"threads {K}: {R[f'threads{K}_1000_s']:.1f} s", flush=True)
# processes: 4 rooms x 1000 steps
env = dict(os.environ, OMP_NUM_THREADS="2")
t = time.perf_counter()
ps = [subprocess.Popen([sys.executable, __file__, "proc", str(i)], env=env, stdout=subprocess.PIPE, text=True) for i in range(4)]
outs = [p.communicate()[0] for p in ps]
R["procs4_1000_s"] = time.perf_counter() - t; print("procs 4:", R["procs4_1000_s"], outs, flush=True)
# a bigger batch / full resolution at the same step count
for name, kw in (("views4", dict(batch_views=4)), ("fullres", dict(render_scale=1.0))):
    t = time.perf_counter(); run(0, 1000, LiftConfig.fast(iterations=2000, checkpoint_every=None, **kw)); torch.cuda.synchronize()
    R[f"{name}_1000_s"] = time.perf_counter() - t; print(name, R[f"{name}_1000_s"], flush=True)
json.dump(R, open(OUT / "profile_lift.json", "w"), indent=1)
