"""Synthetic scene generation speed: `fit3d.synthetic.make_scene`, end to end (layout, walk, ray casting with shadows,
PNG writing, sparse points, transforms.json), and the ray casting alone (`render`), in views per second.

Default: one scene of 64 views at 320x240 on the CPU (the size of the demo), seeds 7 and 11, median of `--repeats`.
On a GPU (`--device cuda`) it also times 876x584 (ScanNet++ DSLR size, downscaled by 2). Writes scenes only
to a temporary folder (under $OUT if set), removed afterwards.

    python tests/benchmarks/bench_synthetic.py                      # CPU, 1 thread (make_scene's default)
    python tests/benchmarks/bench_synthetic.py --threads 2
    python tests/benchmarks/bench_synthetic.py --device cuda        # GPU: 320x240 and 876x584
"""
import argparse, os, shutil, statistics, tempfile, time
from pathlib import Path

import torch

from fit3d.synthetic import make_room, make_scene, render, room_cameras, _Geometry, _shadow_res


def sync(device):
    if str(device).startswith("cuda"): torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--views", type=int, default=64)
    ap.add_argument("--seeds", default="7,11")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (make_scene's default is 1)")
    a = ap.parse_args()
    sizes = [(320, 240)] + ([(876, 584)] if a.device.startswith("cuda") else [])
    root = Path(tempfile.mkdtemp(dir=os.environ.get("OUT") or None))
    rows = []
    try:
        for W, H in sizes:
            for seed in map(int, a.seeds.split(",")):
                total, ray = [], []
                for r in range(a.repeats):
                    sync(a.device); t = time.perf_counter()
                    make_scene(root / f"s{seed}", seed, n_views=a.views, width=W, height=H, device=a.device, threads=a.threads)
                    sync(a.device); total.append(time.perf_counter() - t)
                    room = make_room(seed); cams = room_cameras(room, a.views, W, H, seed)
                    old = torch.get_num_threads(); torch.set_num_threads(a.threads)
                    sync(a.device); t = time.perf_counter()
                    render(_Geometry(room, a.device, _shadow_res(cams[0])), cams, chunk=1 << (20 if a.device.startswith("cuda") else 15))
                    sync(a.device); ray.append(time.perf_counter() - t)
                    torch.set_num_threads(old)
                tot, rt = statistics.median(total), statistics.median(ray)
                rows.append((f"{W}x{H}", seed, str(make_room(seed)).split(",")[1].strip(), tot, a.views / tot, rt, a.views / rt))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    dev = torch.cuda.get_device_name() if a.device.startswith("cuda") else f"CPU, {a.threads} thread(s) of {os.cpu_count()}"
    print(f"make_scene, {a.views} views per scene, {dev}, median of {a.repeats}")
    print(f"{'size':>9} {'seed':>5} {'room':>12} {'make_scene s':>13} {'views/s':>8} {'render s':>9} {'views/s':>8}")
    for size, seed, room, tot, vps, rt, rvps in rows:
        print(f"{size:>9} {seed:>5} {room:>12} {tot:>13.2f} {vps:>8.1f} {rt:>9.2f} {rvps:>8.1f}")


if __name__ == "__main__":
    main()
