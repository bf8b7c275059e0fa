"""Pretrain a fit3d foundation model in one device call: bank, training to a time budget, shards, gate, pictures.

Everything that comes back goes to $OUT (at most 8 files of at most 16 MB): `results.tar` (weights if they fit,
history, loss plot, PCA pictures, gate table and JSON, the shard manifest, the log) and the checkpoint in shards of at
most 15 MB. A later call resumes from those files (`--resume DIR`); the schedule is fixed by `--steps`, not by time.

    python tests/benchmarks/pretrain_device.py --smoke                       # CPU, well under a minute
    python tests/benchmarks/pretrain_device.py --budget 540                  # GPU: first call, ~9 minutes in all
    python tests/benchmarks/pretrain_device.py --budget 540 --resume DIR     # GPU: continue from returned files
    python tests/benchmarks/pretrain_device.py --export-from DIR             # here: reassemble the checkpoint into the run
                                                                              # folder (carry it to resume) and write the weights
"""
import argparse, json, os, shutil, sys, tarfile, time
from dataclasses import asdict, replace
from pathlib import Path

T0 = time.perf_counter()
import torch
from fit3d.features import weights_dir
from fit3d.pretrain import (ARCHS, PretrainConfig, _dist, bank_for, compact_checkpoint, create_vit,
                            export_weights, join_shards, load_pretrained, pretrain, run_record, write_shards)
from fit3d.pretrain_eval import gate, gate_table, held_out_views, pca_picture
from fit3d.store import load_checkpoint, resolve_device, write_json

MAX_FILES, SHARD = 8, 15_000_000


def config(a) -> PretrainConfig:
    kw = dict(name=a.name, objective=a.objective, steps=a.steps, rooms=a.rooms, views=a.views, batch_size=a.batch_size,
              ibot=a.ibot, koleo=a.koleo, jitter=a.jitter, out_dir=str(a.run_dir), bank_dir=a.bank_dir)
    if a.smoke: kw |= dict(name="fit3d_micro", steps=4, batch_size=4, rooms=2, views=2, width=112, height=84, global_size=56, local_size=28,
                           n_local=2, out_dim=64, head_hidden=64, head_bottleneck=32, log_every=1, ckpt_every=2,
                           pca_every=0, pca_rooms=1, device="cpu", bank_dir=str(a.run_dir / "bank"))
    return PretrainConfig(**kw)


def _tar(path: Path, files: list):
    "Write the existing `files` into the tar at `path` (atomically: a temporary file renamed over it)."
    tmp = path.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as t:
        for f in files:
            if Path(f).exists(): t.add(f, arcname=Path(f).name)
    os.replace(tmp, path)


def unpack(src: Path, run_dir: Path) -> Path:
    "Reassemble the checkpoint an earlier call returned (shards + results.tar holding the manifest) as run_dir/checkpoint.pt."
    dst = run_dir / "returned"; dst.mkdir(parents=True, exist_ok=True)   # `src` may be read-only
    if (src / "results.tar").exists():
        with tarfile.open(src / "results.tar") as t:
            try: t.extractall(dst, filter="data")
            except TypeError: t.extractall(dst)   # Python without tar filters
    for p in [*src.glob("checkpoint.pt.*-of-*"), *src.glob("checkpoint.pt.shards.json")]: shutil.copy(p, dst / p.name)
    man = dst / "checkpoint.pt.shards.json"
    if not man.exists(): sys.exit(f"{src}: no checkpoint.pt.shards.json (in the folder or in results.tar); nothing to resume from")
    return join_shards(man, run_dir / "checkpoint.pt")


def run_gate(a, cfg: PretrainConfig, run: Path, weights: Path, say) -> dict:
    "The quality gate and the PCA picture, pretrained vs random; writes gate.txt and pca_vs_random.png into `run`."
    rnd, pre = create_vit(cfg.name), load_pretrained(cfg.name, weights)
    kw = dict(n_train=1, n_val=1, views=3, width=56, height=42, iters=10) if a.smoke else dict(iters=a.gate_iters)
    t = time.perf_counter(); g = gate({cfg.name: pre, "random": rnd}, root=Path(cfg.bank_dir).parent / "gate", **kw)
    table = gate_table(g); say(table + f"\n(gate {time.perf_counter() - t:.0f} s; pass if mIoU >= 1.75x random)")
    (run / "gate.txt").write_text(table + "\n")
    views = held_out_views(cfg, resolve_device(), 1 if a.smoke else 3)   # this process' GPU if there is one
    pca_picture(pre, views, {"random": rnd}).save(run / "pca_vs_random.png")
    return dict(gate=g, gate_pass=g[cfg.name]["miou"] >= 1.75 * g["random"]["miou"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="fit3d_tiny", choices=list(ARCHS))
    ap.add_argument("--objective", default="dino", choices=["dino", "supervised"])
    ap.add_argument("--steps", type=int, default=6000, help="schedule length (keep it the same when resuming)")
    ap.add_argument("--budget", type=float, default=540, help="seconds for the whole call; training gets what is left")
    ap.add_argument("--reserve", type=float, default=110, help="seconds kept for saving, the gate and pictures")
    ap.add_argument("--rooms", type=int, default=1000); ap.add_argument("--views", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--ibot", type=float, default=1.0); ap.add_argument("--koleo", type=float, default=0.1)
    ap.add_argument("--jitter", type=float, default=0.2)
    ap.add_argument("--resume", type=Path, help="folder with the files an earlier call returned")
    ap.add_argument("--moments", default="drop", choices=["drop", "bf16"],
                    help="Adam moments in the returned checkpoint: drop (~60 MB for fit3d_tiny, fits a 64 MiB carry) or bf16 (~90 MB)")
    ap.add_argument("--no-gate", action="store_true"); ap.add_argument("--gate-iters", type=int, default=1500)
    ap.add_argument("--export-from", type=Path, help="only rebuild fit3d/weights/<name>.safetensors from returned files")
    ap.add_argument("--run-dir", type=Path, default=None); ap.add_argument("--bank-dir", default="data/pretrain/bank")
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run of every stage")
    a = ap.parse_args()
    a.run_dir = a.run_dir or Path("runs/pretrain") / f"{a.name}-{a.objective}{'-smoke' if a.smoke else ''}"
    out = Path(os.environ.get("OUT") or a.run_dir / "out"); out.mkdir(parents=True, exist_ok=True)
    cfg = config(a)
    if a.export_from:   # on the CPU here: the teacher (or student) backbone of the returned checkpoint -> fp16 weights
        ck = unpack(a.export_from, a.run_dir)
        st = load_checkpoint(ck, run_record(cfg), "pretraining checkpoint")
        model = create_vit(cfg.name)
        src = st["teacher"] if "teacher" in st else st["student"]
        model.load_state_dict({k[4:]: v for k, v in src.items() if k.startswith("vit.")})
        p = export_weights(model, weights_dir() / f"{cfg.name}.safetensors", cfg.name, dict(record=run_record(cfg), step=st["step"]))
        print(f"wrote {p} ({p.stat().st_size / 1e6:.1f} MB) from step {st['step']}/{cfg.steps}"); return
    if a.resume: print("resuming from", unpack(a.resume, a.run_dir))
    a.run_dir.mkdir(parents=True, exist_ok=True); log = open(a.run_dir / "log.txt", "a")   # not in $OUT: 8 files at most
    say = lambda s: (print(s), log.write(s + "\n"), log.flush())
    rank, world = _dist()
    dev = resolve_device(cfg.device)
    t = time.perf_counter(); bank = bank_for(cfg, rank, world, dev)
    say(f"bank: {len(bank['images'])} images of {cfg.rooms // world} rooms in {time.perf_counter() - t:.0f} s "
        f"({len(bank['images']) / max(time.perf_counter() - t, 1e-9):.0f} img/s, or loaded from {cfg.bank_dir})")
    cfg = replace(cfg, seconds=max(0.0, a.budget - (time.perf_counter() - T0) - a.reserve) if not a.smoke else 600)
    say(f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'} x{world}; training for at most "
        f"{cfg.seconds:.0f} s; settings {json.dumps(asdict(cfg))}")
    res = pretrain(cfg, bank, log=say)
    if rank != 0: return
    say(f"trained to step {res['step']}/{cfg.steps} ({res['seconds']:.0f} s in all); loader {res['loader_img_s'] or 0:.0f} img/s, "
        f"step {res['step_img_s'] or 0:.0f} img/s; call so far {time.perf_counter() - T0:.0f} s")
    run = Path(cfg.out_dir)
    compact_checkpoint(run / "checkpoint.pt", run / "transfer" / "checkpoint.pt", a.moments)
    shards = write_shards(run / "transfer" / "checkpoint.pt", run / "transfer" / "shards", SHARD)
    weights, small = Path(res["weights"]), []
    if weights.stat().st_size > SHARD: small = write_shards(weights, run / "transfer" / "shards", SHARD)
    big = [*small[:-1], *shards[:-1]]   # to $OUT now, before the gate: a call killed later still returns them
    if len(big) > MAX_FILES - 1:        # the weights come first; the checkpoint only if all of it fits
        print(f"checkpoint needs {len(shards) - 1} shards and only {MAX_FILES - 1 - len(small[:-1])} files are left: not "
              f"returned (resume on the same warm machine: {run / 'checkpoint.pt'} stays there)")
        big = small[:-1]
    for f in big: shutil.copy(f, out / f.name)
    pack = lambda names: _tar(out / "results.tar", [run / n for n in names] + [shards[-1]] + ([small[-1]] if small else [weights]))
    pack(["history.json", "loss.png", "pca_last.png", "log.txt"])   # replaced at the end; enough to resume if the gate is cut short
    summary = dict(result={k: v for k, v in res.items() if k != "history"}, config=asdict(cfg))
    if not a.no_gate:
        try: summary |= run_gate(a, cfg, run, weights, say)
        except Exception as e:   # a failing gate must not cost the training: the shards are already in $OUT
            import traceback; say(f"gate failed: {type(e).__name__}: {e}\n{traceback.format_exc()[-2000:]}")
    write_json(run / "results.json", summary)
    log.close()
    pack(["results.json", "history.json", "loss.png", "pca_last.png", "pca_vs_random.png", "gate.txt", "log.txt",
          *[p.name for p in sorted(run.glob("pca_0*.png"))[-4:]]])
    print(f"$OUT: {', '.join(sorted(p.name for p in out.iterdir()))}; call {time.perf_counter() - T0:.0f} s")


if __name__ == "__main__":
    main()
