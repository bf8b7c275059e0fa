"""Synthetic scene generation speed: `fit3d.synthetic.make_scene`, end to end (layout, walk, ray casting with shadows,
PNG writing, sparse points, transforms.json), and the ray casting alone (`render`), in views per second.

Default: one scene of 64 views at 320x240 on the CPU (the size of the demo), seeds 7 and 11, median of `--repeats`.
On a GPU (`--device cuda`) it also times 876x584 (ScanNet++ DSLR size, downscaled by 2). Writes scenes only
to a temporary folder (under $OUT if set), removed afterwards.

    python tests/benchmarks/bench_synthetic.py                      # CPU, 1 thread (make_scene's default)
    python tests/benchmarks/bench_synthetic.py --threads 2
    python tests/benchmarks/bench_synthetic.py --device cuda        # GPU: 320x240 and 876x584
    python tests/benchmarks/bench_synthetic.py --smoke              # tiny, seconds: checks that it runs

It also times the pretraining stream: `--rooms` varied rooms (`make_room`), `--per-room` `random_views` each,
rendered at `--stream-size` (224x168 by default): rooms/s, views/s of random_views and images/s of the whole stream.
Prints tables and writes $OUT/bench_synthetic.json when $OUT is set.
"""
import argparse, json, os, shutil, statistics, tempfile, time
from pathlib import Path

import torch

from fit3d.rooms import make_room
from fit3d.raycast import render, _Geometry, _shadow_res
from fit3d.synthetic import make_scene, random_views, room_cameras


def sync(device):
    if str(device).startswith("cuda"): torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--views", type=int, default=64)
    ap.add_argument("--seeds", default="7,11")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (make_scene's default is 1)")
    ap.add_argument("--rooms", type=int, default=64, help="rooms in the pretraining stream")
    ap.add_argument("--per-room", type=int, default=16, help="random views per room in the stream")
    ap.add_argument("--stream-size", default="224x168")
    ap.add_argument("--smoke", action="store_true", help="a tiny run: 4 views at 64x48, 1 seed, 3 rooms")
    a = ap.parse_args()
    if a.smoke: a.views, a.seeds, a.repeats, a.rooms, a.per_room, a.stream_size = 4, "7", 1, 3, 2, "64x48"
    sizes = [(64, 48)] if a.smoke else [(320, 240)] + ([(876, 584)] if a.device.startswith("cuda") else [])
    root = Path(tempfile.mkdtemp(dir=os.environ.get("OUT") or None))
    rows = []
    try:
        for W, H in sizes:
            for seed in map(int, a.seeds.split(",")):
                total, ray = [], []
                for r in range(a.repeats):
                    sync(a.device); t = time.perf_counter()
                    make_scene(root / f"s{seed}", seed, n_views=a.views, width=W, height=H, n_test=min(8, a.views // 4),
                               device=a.device, threads=a.threads)
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
    stream = bench_stream(a)
    print(f"pretraining stream, {a.rooms} varied rooms x {a.per_room} random views at {a.stream_size}, {dev}")
    print(" ".join(f"{k}={v:.1f}" for k, v in stream.items()))
    if os.environ.get("OUT"):
        rec = dict(device=dev, make_scene=[dict(zip(["size", "seed", "room", "make_scene_s", "views_per_s", "render_s", "render_views_per_s"], r))
                                           for r in rows], stream=stream, args=vars(a))
        Path(os.environ["OUT"], "bench_synthetic.json").write_text(json.dumps(rec, indent=1))


def bench_stream(a) -> dict:
    "Rooms, random views and rendered images per second for a stream of varied rooms (what pretraining consumes)."
    W, H = map(int, a.stream_size.split("x"))
    old = torch.get_num_threads(); torch.set_num_threads(a.threads)
    try:
        t0 = time.perf_counter(); rooms = [make_room(10_000 + k) for k in range(a.rooms)]; t_rooms = time.perf_counter() - t0
        t0 = time.perf_counter(); cams = [random_views(r, a.per_room, W, H, seed=k, device=a.device) for k, r in enumerate(rooms)]
        t_views = time.perf_counter() - t0
        sync(a.device); t0 = time.perf_counter()
        for r, c in zip(rooms, cams): render(_Geometry(r, a.device, _shadow_res(c[0])), c, chunk=1 << (20 if a.device.startswith("cuda") else 15))
        sync(a.device); t_render = time.perf_counter() - t0
    finally: torch.set_num_threads(old)
    n = a.rooms * a.per_room
    return dict(rooms_per_s=a.rooms / t_rooms, random_views_per_s=n / t_views, images_per_s=n / (t_rooms + t_views + t_render))


if __name__ == "__main__":
    main()
