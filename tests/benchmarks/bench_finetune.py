"""Stage II throughput against a bare timm training step, and the two kinds of targets, on one device.

Rows per model (random init, DINOv2 architecture, bf16 autocast on the GPU, batch 2, input 868x574):
  bare timm    forward_features + L1 on the patch tokens + backward + AdamW step (default for-each AdamW, no clipping)
  fit3d step   fit3d.finetune.train_step: Backbone (normalise, tokens -> grid), masked L1, clip 0.1, fused AdamW
  fit3d loop   finetune() end to end on a fake target cache: JPEG decode, resize, loader workers, logging, checks
The bare and fit3d steps are timed side by side, interleaved in rounds (so clock and thermal drift hit both alike);
each row is the median step time. The ratio is fit3d img/s over bare img/s (the goal: at least 0.95).
`--targets` also lifts a synthetic room and compares cached area-averaged targets with the official bilinear ones
(mean cosine, relative L1) and times rendering a target per image, as the official code does at every step.

  python tests/benchmarks/bench_finetune.py                     # ViT-S/14 and ViT-B/14, step + loop rows (~2 min on an H200)
  python tests/benchmarks/bench_finetune.py --targets           # also the target comparison (a real-size room, ~2 min)
  python tests/benchmarks/bench_finetune.py --smoke --targets   # CPU smoke test: tiny ViT, small images, few steps
  torchrun --standalone --nproc_per_node 2 tests/benchmarks/bench_finetune.py --no-loop   # both steps under DDP
Writes bench_finetune.json to $OUT (or the current folder's runs/ when $OUT is unset); temporary files are removed.
"""
import argparse, atexit, json, os, statistics, tempfile, time
from pathlib import Path

import numpy as np
import timm
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from fit3d.features import BACKBONES, TINY, load_backbone, iter_features
from fit3d.finetune import FinetuneConfig, finetune, train_step, write_targets, make_optimizer, render_target, RESAMPLE
from fit3d.scene import Camera, Scene, look_at
from fit3d.formats import write_nerfstudio


def sync(dev):
    if dev.type == "cuda": torch.cuda.synchronize(dev)


def data(B, H, W, C, p, dev, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(image=torch.rand(B, 3, H, W, generator=g).to(dev), target=torch.randn(B, C, H // p, W // p, generator=g).to(dev),
                mask=torch.ones(B, H // p, W // p).to(dev))


def timm_model(name):
    if name in TINY:
        arch, kw = TINY[name]; return timm.create_model(arch, pretrained=False, num_classes=0, dynamic_img_size=True, **kw)
    return timm.create_model(BACKBONES.get(name, name), pretrained=False, num_classes=0, dynamic_img_size=True)


class Tokens(nn.Module):
    "A bare timm ViT returning its normalised image's patch tokens (what DDP needs as a forward)."
    def __init__(self, m): super().__init__(); self.m, self.k = m, m.num_prefix_tokens
    def forward(self, x): return self.m.forward_features(x)[:, self.k:]


def ddp(m, world, dev):
    return nn.parallel.DistributedDataParallel(m, device_ids=[dev.index] if dev.type == "cuda" else None) if world > 1 else m


def bare_step(name, B, H, W, amp, dev, world=1):
    "The bare timm training step as a closure."
    m = timm_model(name).to(dev).train(); net = ddp(Tokens(m), world, dev)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-5, weight_decay=1e-4)
    d = data(B, H, W, m.num_features, m.patch_embed.patch_size[0], dev)
    x, t = d["image"], d["target"].flatten(2).transpose(1, 2)
    mean = torch.tensor([0.485, 0.456, 0.406], device=dev).view(1, 3, 1, 1); std = torch.tensor([0.229, 0.224, 0.225], device=dev).view(1, 3, 1, 1)
    def step():
        with torch.autocast(dev.type, dtype=amp or torch.float32, enabled=amp is not None):
            tok = net((x - mean) / std)
        loss = (tok.float() - t).abs().mean()
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    return step


def fit3d_step(name, B, H, W, amp, dev, compile=False, world=1):
    "fit3d's train_step as a closure (the optimiser `finetune` makes)."
    bb = load_backbone(name, pretrained=False, device=dev).train().requires_grad_(True)
    net = ddp(bb, world, dev)
    net = torch.compile(net) if compile else net
    opt = make_optimizer(bb, 1e-5, 1e-4, dev)
    d = data(B, H, W, bb.dim, bb.patch_size, dev)
    return lambda: train_step(net, d, opt, 0.1, amp, None, world)


def side_by_side(steps: dict, warmup, n, rounds, dev) -> dict:
    "Median seconds per step of each closure, timed in interleaved rounds of `n` steps after `warmup` each."
    for f in steps.values():
        for _ in range(warmup): f()
    sync(dev); ts = {k: [] for k in steps}
    for _ in range(rounds):
        for k, f in steps.items():
            for _ in range(n):
                t = time.perf_counter(); f(); sync(dev); ts[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in ts.items()}


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
    return write_targets(folder / "targets" / "scene.safetensors", tg, name, p, (H, W), folder / "scene",
                         record=dict(kind="benchmark", key="fake"))


def loop_rate(name, B, H, W, img_hw, dev, warmup, steps, workers, tmp):
    "Images per second of the whole finetune() loop between step `warmup` and the last step."
    bb = load_backbone(name, pretrained=False, device="cpu")
    cache = fake_cache(Path(tmp) / name, name, (warmup + steps) * B, H, W, bb.dim, bb.patch_size, img_hw)
    marks = {}
    def cb(s, loss):
        if s in (warmup, warmup + steps): sync(dev); marks[s] = time.perf_counter()
    cfg = FinetuneConfig(targets=(str(cache),), out=str(Path(tmp) / name / "run"), backbone=name, pretrained=False, batch_size=B,
                         save_every=0, num_workers=workers, progress=False, resume=False, device=str(dev))
    finetune(cfg, callback=cb)
    return steps * B / (marks[warmup + steps] - marks[warmup])


def targets_row(dev, smoke, tmp):
    "Lift a synthetic room; compare area-averaged and official bilinear targets; time one rendered target."
    from fit3d.synthetic import make_scene
    from fit3d.lift import LiftConfig, lift
    name, (W, H), n, its = ("tiny", (112, 84), 8, 30) if smoke else ("dinov2_small", (876, 584), 24, 2000)
    room = make_scene(Path(tmp) / "room", seed=1, n_views=n, width=W, height=H, n_test=2, device=str(dev), n_points=4000)
    bb = load_backbone(name, pretrained=False, device=dev)
    feats = {room.cameras[i].name: f for i, f in zip(room.train, iter_features(bb, (room.image(i) for i in room.train), dtype=torch.float32))}
    cfg = (LiftConfig.tiny if smoke else LiftConfig.fast)(iterations=its)
    t = time.perf_counter(); lifted = lift(room, feats, cfg, device=dev, progress=False); lift_s = time.perf_counter() - t
    grid = bb.grid_size(H, W)
    ks = {how: torch.stack([render_target(lifted, room, i, grid, how, device=dev)[0] for i in room.train]) for how in RESAMPLE}
    A, Bl = ks["area"].float(), ks["bilinear"].float()
    cos = F.cosine_similarity(A, Bl, dim=1).mean().item(); rel = ((A - Bl).abs().mean() / Bl.abs().mean()).item()
    for _ in range(2): render_target(lifted, room, room.train[0], grid, "bilinear", device=dev)
    sync(dev); t = time.perf_counter()
    for i in room.train: render_target(lifted, room, i, grid, "bilinear", device=dev)
    sync(dev); ms = (time.perf_counter() - t) / len(room.train) * 1e3
    return dict(backbone=name, image=[H, W], grid=list(grid), views=len(room.train), lift_iterations=its, lift_s=round(lift_s, 1),
                gaussians=int(lifted.splats["means"].shape[0]), cosine_area_vs_bilinear=round(cos, 4),
                rel_l1_area_vs_bilinear=round(rel, 4), render_ms_per_target=round(ms, 2))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["dinov2_small", "dinov2_base"])
    ap.add_argument("--batch", type=int, default=2, help="images per step (the reference: 2)")
    ap.add_argument("--size", type=int, nargs=2, default=[574, 868], metavar=("H", "W"), help="input size fed to the ViT")
    ap.add_argument("--image", type=int, nargs=2, default=[584, 876], metavar=("H", "W"), help="image size on disk (loop row)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--steps", type=int, default=20, help="steps per round per row")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of bare and fit3d steps")
    ap.add_argument("--loop-steps", type=int, default=40, help="timed steps of the finetune() loop")
    ap.add_argument("--workers", type=int, default=4, help="loader workers for the loop row")
    ap.add_argument("--compile", action="store_true", help="add a torch.compile'd fit3d step row")
    ap.add_argument("--no-loop", action="store_true", help="skip the finetune() loop row")
    ap.add_argument("--targets", action="store_true", help="also compare area-averaged and bilinear targets on a lifted room")
    ap.add_argument("--smoke", action="store_true", help="CPU smoke test: tiny ViT, 56x84 inputs, a few steps")
    a = ap.parse_args()
    if a.smoke:
        a.models, a.size, a.image, a.warmup, a.steps, a.rounds, a.loop_steps, a.workers = ["tiny"], [56, 84], [60, 90], 1, 2, 2, 2, 0
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    cuda = torch.cuda.is_available() and not a.smoke
    dev = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
    if cuda: torch.cuda.set_device(dev)
    if world > 1: dist.init_process_group("nccl" if cuda else "gloo"); a.no_loop, a.targets = True, False
    say = print if rank == 0 else (lambda *x, **k: None)
    if dev.type == "cuda": torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = True
    amp = torch.bfloat16 if dev.type == "cuda" else None
    H, W = a.size; B = a.batch
    head = (f"device: {torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'} x {world}; torch {torch.__version__}, timm {timm.__version__}; "
            f"input {W}x{H}, batch {B} per process, {'bf16 autocast' if amp else 'fp32'}; median of {a.rounds}x{a.steps} interleaved steps")
    say(head); say(f"{'model':<14}{'row':<16}{'ms/step':>10}{'img/s':>10}{'vs bare':>10}")
    tmp = tempfile.TemporaryDirectory(); atexit.register(tmp.cleanup); tmp = tmp.name
    res = dict(header=head, models={})
    for name in a.models:
        steps = dict(bare=bare_step(name, B, H, W, amp, dev, world), fit3d=fit3d_step(name, B, H, W, amp, dev, world=world))
        if a.compile: steps["fit3d_compiled"] = fit3d_step(name, B, H, W, amp, dev, compile=True, world=world)
        t = side_by_side(steps, a.warmup, a.steps, a.rounds, dev)
        rows = {k: dict(ms=v * 1e3, img_s=B * world / v) for k, v in t.items()}
        del steps
        if dev.type == "cuda": torch.cuda.empty_cache()
        if not a.no_loop:
            r = loop_rate(name, B, H, W, tuple(a.image), dev, a.warmup, a.loop_steps, a.workers, tmp)
            rows["loop"] = dict(ms=B / r * 1e3, img_s=r)
        for k, v in rows.items():
            v["ratio"] = round(v["img_s"] / rows["bare"]["img_s"], 3)
            say(f"{name:<14}{k:<16}{v['ms']:>10.1f}{v['img_s']:>10.1f}{v['ratio']:>9.3f}x")
        res["models"][name] = rows
        if dev.type == "cuda": torch.cuda.empty_cache()
    if a.targets:
        r = res["targets"] = targets_row(dev, a.smoke, tmp)
        print(f"targets on a lifted {r['image'][1]}x{r['image'][0]} room ({r['views']} views, {r['gaussians']} Gaussians, "
              f"{r['lift_iterations']} lift steps in {r['lift_s']} s), {r['backbone']} grid {r['grid'][0]}x{r['grid'][1]}: "
              f"area vs bilinear mean cosine {r['cosine_area_vs_bilinear']}, relative L1 {r['rel_l1_area_vs_bilinear']}; "
              f"rendering one official target {r['render_ms_per_target']} ms")
    if world > 1: dist.destroy_process_group()
    if rank: return
    out = Path(os.environ.get("OUT") or "runs"); out.mkdir(parents=True, exist_ok=True)
    name = "bench_finetune.json" if world == 1 else f"bench_finetune_ddp{world}.json"
    (out / name).write_text(json.dumps(res, indent=1))
    print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
