"""What knowing input files by their bytes costs: `fit3d.store.scene_identity` on a ScanNet++-sized scene.

Provenance records used to know a file by its name, size and mtime, which `cp -p` and `rsync -a` restore on a rewritten
file; they now hash its bytes (SHA-256, `fit3d.store.content_digest`), once per process while the file's inode, size,
mtime and ctime stay the same. This writes a scene of `--views` JPEGs at 876x584 (the paper's ScanNet++ DSLR size,
quality 95, photograph-like: smooth shading, edges and sensor noise) and times, in one process, side by side:

- `stat`: the old stamp (name, size, mtime) of every image;
- `hash, first`: the content digest of every image, as the first record of a run computes it (the files were just
  written, so they are in the page cache: on a cold disk add the time to read them once, which the run pays anyway);
- `hash, memo`: the same again (every later record of the run: a `stat` per file);
- `scene_identity`: the whole record (digests, poses, intrinsics), memoised;
- `decode`: decoding every image with PIL, which every lift and feature extraction does anyway.

    python tests/benchmarks/bench_hashing.py                 # 400 views; prints a table
    python tests/benchmarks/bench_hashing.py --views 50      # smaller
Writes $OUT/bench_hashing.json when $OUT is set.
"""
import argparse, json, os, statistics, tempfile, time
from pathlib import Path

import numpy as np
from PIL import Image

import fit3d.store as store
from fit3d.scene import Camera, Scene, look_at


def photo(rng, w=876, h=584) -> np.ndarray:
    "A photograph-like image: smooth shading, a few hard-edged shapes and sensor noise (JPEG sizes like real ones)."
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    img = np.stack([np.sin(6 * x * rng.uniform(0.5, 2) + rng.uniform(0, 6)) * 0.3 + 0.5 + 0.2 * y for _ in range(3)], -1)
    for _ in range(12):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        img[y0:y0 + rng.integers(20, 200), x0:x0 + rng.integers(20, 300)] = rng.uniform(0, 1, 3)
    img += rng.normal(0, 0.02, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def timed(fn, repeats: int) -> float:
    "Median seconds of `fn` over `repeats` calls."
    ts = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--views", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(dir=os.environ.get("OUT")) as d:
        d, cams = Path(d), []
        for i in range(a.views):
            p = d / f"DSC{i:05d}.JPG"; Image.fromarray(photo(rng)).save(p, quality=95)
            cams.append(Camera(600, 600, 438, 292, 876, 584, look_at([np.cos(i), np.sin(i), 0.5], [0, 0, 0]), p.stem, p))
        scene = Scene(cams, list(range(a.views)), [], name="bench", root=d)
        files = [c.image_path for c in cams]
        mb = sum(f.stat().st_size for f in files) / 2**20
        stat = timed(lambda: [os.stat(f) for f in files], a.repeats)
        def first():
            store._CONTENT.clear(); [store.content_digest(f) for f in files]
        hash_first = timed(first, a.repeats)
        hash_memo = timed(lambda: [store.content_digest(f) for f in files], a.repeats)
        ident = timed(lambda: store.scene_identity(scene), a.repeats)
        def decode():
            for f in files:
                with Image.open(f) as im: im.convert("RGB").load()
        dec = timed(decode, max(1, a.repeats // 2))
    res = dict(views=a.views, size=[876, 584], megabytes=round(mb, 1), kb_per_image=round(mb * 1024 / a.views, 1),
               seconds=dict(stat=stat, hash_first=hash_first, hash_memo=hash_memo, scene_identity_memo=ident,
                            decode=dec),
               hash_mb_per_s=round(mb / hash_first, 1), hash_over_decode=round(hash_first / dec, 3))
    print(f"{a.views} JPEGs of 876x584, {mb:.1f} MB ({res['kb_per_image']} KB each)")
    print("| what | seconds for the scene | ms per image |\n|---|---:|---:|")
    for k, v in res["seconds"].items(): print(f"| {k} | {v:.4f} | {v * 1e3 / a.views:.3f} |")
    print(f"hashing: {res['hash_mb_per_s']} MB/s; {res['hash_over_decode']:.1%} of decoding the same images")
    if os.environ.get("OUT"): (Path(os.environ["OUT"]) / "bench_hashing.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
