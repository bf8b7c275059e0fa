"Pretraining checks that need more than a notebook cell: DDP under torchrun, and resuming from a compact, sharded checkpoint."
import json, os, subprocess, sys, textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from fit3d.pretrain import PretrainConfig, compact_checkpoint, join_shards, pretrain, run_record, write_shards
from fit3d.store import load_checkpoint


def micro(out, **kw) -> PretrainConfig:
    return PretrainConfig(**dict(name="fit3d_micro", steps=4, batch_size=2, global_size=28, local_size=14, n_local=1,
                                 out_dim=32, head_hidden=32, head_bottleneck=16, warmup=0.25, log_every=1, ckpt_every=2,
                                 pca_every=0, pca_rooms=1, width=56, height=42, out_dir=str(out), progress=False) | kw)


@pytest.fixture(scope="module")
def bank():
    rng = np.random.default_rng(0)
    return dict(images=rng.integers(0, 255, (6, 42, 56, 3), dtype=np.uint8), labels=rng.integers(0, 15, (6, 42, 56), dtype=np.uint8))


@pytest.mark.parametrize("moments", ["bf16", "drop"])
def test_resume_from_compact_shards(tmp_path, bank, monkeypatch, moments):
    "A run cut at step 2, shipped as bf16-moment shards and reassembled, finishes its schedule close to the uninterrupted run."
    monkeypatch.setattr("fit3d.pretrain.held_out_views", lambda cfg, dev, rooms=1: torch.from_numpy(bank["images"][:1]))
    full = pretrain(micro(tmp_path / "full"), bank)
    cut = micro(tmp_path / "cut", seconds=0)
    import fit3d.pretrain as P
    real = P.save_checkpoint
    class Stop(Exception): pass
    def stop(path, state, record):
        real(path, state, record)
        if state["step"] == 2: raise Stop
    monkeypatch.setattr(P, "save_checkpoint", stop)
    with pytest.raises(Stop): pretrain(micro(tmp_path / "cut"), bank)
    monkeypatch.setattr(P, "save_checkpoint", real)
    compact_checkpoint(tmp_path / "cut/checkpoint.pt", tmp_path / "ship/checkpoint.pt", moments)
    files = write_shards(tmp_path / "ship/checkpoint.pt", tmp_path / "ship/out", max_bytes=100_000)
    assert len(files) > 2 and all(f.stat().st_size <= 100_000 for f in files)
    join_shards(files[-1], tmp_path / "resumed/checkpoint.pt")
    assert (tmp_path / "resumed/checkpoint.pt").read_bytes() == (tmp_path / "ship/checkpoint.pt").read_bytes()
    res = pretrain(micro(tmp_path / "resumed"), bank)
    assert res["done"] and res["step"] == 4
    a = torch.load(tmp_path / "full/checkpoint.pt", weights_only=True)["state"]["teacher"]
    b = torch.load(tmp_path / "resumed/checkpoint.pt", weights_only=True)["state"]["teacher"]
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    if moments == "bf16": assert worst < 1e-3, f"resumed teacher differs by {worst}"   # only the moments' rounding differs
    assert all(torch.isfinite(v).all() for v in b.values())


def test_ddp_torchrun(tmp_path):
    "Two processes (gloo) train together; rank 0 writes one checkpoint whose record names the world size."
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import numpy as np, torch
        torch.set_num_threads(1)
        import fit3d.pretrain as P
        P.held_out_views = lambda cfg, dev, rooms=1: torch.zeros(1, 42, 56, 3, dtype=torch.uint8)
        rng = np.random.default_rng(0)
        bank = dict(images=rng.integers(0, 255, (4, 42, 56, 3), dtype=np.uint8), labels=rng.integers(0, 15, (4, 42, 56), dtype=np.uint8))
        cfg = P.PretrainConfig(name="fit3d_micro", steps=2, batch_size=2, global_size=28, local_size=14, n_local=1, out_dim=32,
                               head_hidden=32, head_bottleneck=16, log_every=1, ckpt_every=2, pca_every=0, pca_rooms=1,
                               width=56, height=42, out_dir={str(tmp_path / 'ddp')!r}, progress=False, device="cpu")
        res = P.pretrain(cfg, bank)
        torch.distributed.destroy_process_group()
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517", str(script)],
                       capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    ck = torch.load(tmp_path / "ddp/checkpoint.pt", weights_only=True)
    assert ck["provenance"]["world"] == 2 and ck["state"]["step"] == 2


def test_budget_stops_at_a_step_boundary(tmp_path, bank, monkeypatch):
    "A seconds budget ends the call early, with a checkpoint at the last finished step, even between checkpoints."
    monkeypatch.setattr("fit3d.pretrain.held_out_views", lambda cfg, dev, rooms=1: torch.from_numpy(bank["images"][:1]))
    res = pretrain(micro(tmp_path / "b", steps=10_000, ckpt_every=1, seconds=2.0), bank)
    assert not res["done"] and 0 < res["step"] < 10_000
    ck = torch.load(tmp_path / "b/checkpoint.pt", weights_only=True)
    assert ck["state"]["step"] == res["step"]
