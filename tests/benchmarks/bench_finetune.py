"""Stage II fine-tuning throughput: fit3d's `train_step` and the full `finetune()` loop vs a bare timm training step.

Rows per model (random init, DINOv2 architecture, bf16 autocast on the GPU):
  bare timm      forward_features + L1 on the patch tokens + backward + AdamW step (no clipping, no mask)
  fit3d step     fit3d.finetune.train_step: Backbone (normalise, tokens -> grid), masked L1, clip 0.1, AdamW
  fit3d compiled the same step on a torch.compile'd model (--compile)
  fit3d loop     finetune() end to end on a fake target cache: JPEG decode, resize, loader workers, logging (--loop)
Images are ScanNet++ DSLR half resolution, 876x584, fed at 868x574 (floored to multiples of 14, as the reference
does): a 62x41 patch grid. Each row: warm-up steps, then `--steps` timed steps (CUDA-synchronised), median.

  python tests/benchmarks/bench_finetune.py                       # ViT-S/14 and ViT-B/14 on one GPU
  python tests/benchmarks/bench_finetune.py --compile --loop      # also compiled and end-to-end rows
  torchrun --standalone --nproc_per_node 2 tests/benchmarks/bench_finetune.py --ddp   # 2-GPU scaling (per-GPU batch)
  python tests/benchmarks/bench_finetune.py --quick               # CPU smoke test (tiny ViT, small images)
Writes nothing outside a temporary folder (the --loop cache: 70 JPEGs and their targets, removed at the end).
"""
import argparse, atexit, os, statistics, tempfile, time
from pathlib import Path

import numpy as np
import timm
import torch
import torch.distributed as dist
import torch.nn as nn
from PIL import Image

from fit3d.features import BACKBONES, TINY, load_backbone
from fit3d.finetune import FinetuneConfig, finetune, train_step, write_targets
from fit3d.scene import Camera, Scene, look_at
from fit3d.formats import write_nerfstudio


def sync(dev):
    if dev.type == "cuda": torch.cuda.synchronize(dev)


def timed(step, warmup, steps, dev):
    "Median seconds of `step()` over `steps` calls after `warmup` calls."
    for _ in range(warmup): step()
    sync(dev); ts = []
    for _ in range(steps):
        t = time.perf_counter(); step(); sync(dev); ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def data(B, H, W, C, p, dev, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(image=torch.rand(B, 3, H, W, generator=g).to(dev), target=torch.randn(B, C, H // p, W // p, generator=g).to(dev),
                mask=torch.ones(B, H // p, W // p).to(dev))


def timm_model(name):
    if name in TINY:
        arch, kw = TINY[name]; return timm.create_model(arch, pretrained=False, num_classes=0, dynamic_img_size=True, **kw)
    return timm.create_model(BACKBONES.get(name, name), pretrained=False, num_classes=0, dynamic_img_size=True)


def wrap(m, world, dev):
    return nn.parallel.DistributedDataParallel(m, device_ids=[dev.index] if dev.type == "cuda" else None) if world > 1 else m


class Tokens(nn.Module):
    "A bare timm ViT returning its patch tokens (what DDP needs as forward)."
    def __init__(self, m): super().__init__(); self.m, self.k = m, m.num_prefix_tokens
    def forward(self, x): return self.m.forward_features(x)[:, self.k:]


def bench_bare(name, B, H, W, amp, dev, world, warmup, steps):
    m = timm_model(name).to(dev).train(); net = wrap(Tokens(m), world, dev)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-5, weight_decay=1e-4)
    d = data(B, H, W, m.num_features, m.patch_embed.patch_size[0], dev)
    x, t = d["image"], d["target"].flatten(2).transpose(1, 2)
    mean = torch.tensor([0.485, 0.456, 0.406], device=dev).view(1, 3, 1, 1); std = torch.tensor([0.229, 0.224, 0.225], device=dev).view(1, 3, 1, 1)
    def step():
        with torch.autocast(dev.type, dtype=amp or torch.float32, enabled=amp is not None):
            tok = net((x - mean) / std)
        loss = (tok.float() - t).abs().mean()
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    return timed(step, warmup, steps, dev)


def bench_ours(name, B, H, W, amp, dev, world, warmup, steps, compile=False):
    bb = load_backbone(name, pretrained=False, device=dev).train().requires_grad_(True)
    net = wrap(bb, world, dev)
    if compile: net = torch.compile(net)
    opt = torch.optim.AdamW(bb.parameters(), lr=1e-5, weight_decay=1e-4)
    d = data(B, H, W, bb.dim, bb.patch_size, dev)
    return timed(lambda: train_step(net, d, opt, 0.1, amp, None, world), warmup, steps, dev)


def fake_cache(folder, name, n, H, W, C, p, img_hw):
    "A scene of `n` JPEG views of size img_hw with random targets for input size (H, W)."
    folder = Path(folder); rng = np.random.default_rng(0); cams = []
    ih, iw = img_hw
    base = rng.integers(0, 255, (ih // 8, iw // 8, 3), dtype=np.uint8)
    for i in range(n):
        f = folder / "scene" / f"v{i:03d}.jpg"; f.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.roll(base, i, 1)).resize((iw, ih), Image.BILINEAR).save(f, quality=90)
        a = 2 * np.pi * i / n
        cams.append(Camera(iw, iw, iw / 2, ih / 2, iw, ih, look_at([2 * np.cos(a), 2 * np.sin(a), 0.5], [0, 0, 0]), f"v{i:03d}", f))
    write_nerfstudio(Scene(cams, list(range(n)), [], name="scene", root=folder / "scene"), folder / "scene")
    tg = {c.name: torch.randn(C, H // p, W // p) for c in cams}
    return write_targets(folder / "targets" / "scene.safetensors", tg, name, p, (H, W), folder / "scene")


def bench_loop(name, B, H, W, img_hw, dev, warmup, steps, workers, tmp):
    bb = load_backbone(name, pretrained=False, device="cpu")
    n = (warmup + steps) * B
    cache = fake_cache(Path(tmp) / name, name, n, H, W, bb.dim, bb.patch_size, img_hw)
    ts = []
    cfg = FinetuneConfig(targets=(str(cache),), out=str(Path(tmp) / name / "run"), backbone=name, pretrained=False,
                         batch_size=B, save_every=0, num_workers=workers, progress=False, resume=False,
                         device=str(dev) if dev.type == "cpu" else "auto")
    finetune(cfg, callback=lambda s, l: ts.append(time.perf_counter()))   # loss.item() in the loop syncs every step
    return statistics.median(np.diff(ts[warmup - 1:]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["dinov2_small", "dinov2_base"])
    ap.add_argument("--batch", type=int, default=2, help="images per step per process (the reference: 2)")
    ap.add_argument("--size", type=int, nargs=2, default=[574, 868], metavar=("H", "W"), help="input size fed to the ViT")
    ap.add_argument("--image", type=int, nargs=2, default=[584, 876], metavar=("H", "W"), help="image size on disk (--loop)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--compile", action="store_true", help="add a torch.compile'd fit3d step row")
    ap.add_argument("--loop", action="store_true", help="add an end-to-end finetune() row (fake JPEG cache, loader workers)")
    ap.add_argument("--workers", type=int, default=4, help="loader workers for --loop")
    ap.add_argument("--ddp", action="store_true", help="run under torchrun: DDP over all processes, per-process batch --batch")
    ap.add_argument("--quick", action="store_true", help="CPU smoke test: tiny ViT, 56x84 inputs, 2 steps")
    a = ap.parse_args()
    if a.quick: a.models, a.size, a.image, a.warmup, a.steps, a.workers = ["tiny"], [56, 84], [60, 90], 1, 2, 0
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    if a.ddp and world == 1: print("note: --ddp without torchrun runs one process")
    dev = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() and not a.quick else "cpu")
    if dev.type == "cuda": torch.cuda.set_device(dev); torch.backends.cuda.matmul.allow_tf32 = True
    if world > 1: dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    amp = torch.bfloat16 if dev.type == "cuda" else None
    H, W = a.size; B = a.batch
    say = print if rank == 0 else (lambda *x, **k: None)
    say(f"device: {torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'} x {world} process(es); torch {torch.__version__}, "
        f"timm {timm.__version__}; input {W}x{H}, batch {B} per process, {'bf16 autocast' if amp else 'fp32'}; "
        f"median of {a.steps} steps after {a.warmup} warm-up")
    say(f"{'model':<14}{'row':<16}{'ms/step':>10}{'img/s':>10}{'overhead':>10}")
    tmp = tempfile.TemporaryDirectory(); atexit.register(tmp.cleanup); tmp = tmp.name
    for name in a.models:
        rows = [("bare timm", bench_bare(name, B, H, W, amp, dev, world, a.warmup, a.steps)),
                ("fit3d step", bench_ours(name, B, H, W, amp, dev, world, a.warmup, a.steps))]
        if a.compile: rows.append(("fit3d compiled", bench_ours(name, B, H, W, amp, dev, world, a.warmup, a.steps, compile=True)))
        if a.loop and world == 1: rows.append(("fit3d loop", bench_loop(name, B, H, W, tuple(a.image), dev, a.warmup, a.steps, a.workers, tmp)))
        base = rows[0][1]
        for row, t in rows:
            say(f"{name:<14}{row:<16}{t * 1e3:>10.1f}{B * world / t:>10.1f}{(t / base - 1) * 100:>9.1f}%")
        if dev.type == "cuda": torch.cuda.empty_cache()
    if world > 1: dist.destroy_process_group()


if __name__ == "__main__":
    main()
