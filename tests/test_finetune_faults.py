"Stage II under faults: SIGKILL at random points resumes to the uninterrupted result; bad files are refused by name."
import json, os, random, signal, subprocess, sys, time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fit3d.finetune import FinetuneConfig, finetune, finetuned_record, load_finetuned, TargetViews
from fit3d.testing import toy_targets
from fit3d.store import ArtifactError, NonFiniteLoss

FLAGS = dict(backbone="tiny", pretrained=False, lr=1e-3, epochs=4, batch_size=2, save_every=1, num_workers=0, progress=False,
             device="cpu", log_every=1)

# the child: fine-tunes, printing each step, slowed down so that kills land inside steps and saves as well as between
CHILD = """
import sys, time, torch
from fit3d.finetune import FinetuneConfig, finetune
torch.set_num_threads(1)
cfg = FinetuneConfig(**eval(sys.argv[1]))
def cb(step, loss):
    print(step, flush=True); time.sleep(0.02)
finetune(cfg, callback=cb)
print("done", flush=True)
"""


def _child(cfg: dict) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen([sys.executable, "-c", CHILD, repr(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_sigkill_at_random_points_resumes_exactly(tmp_path):
    targets = toy_targets(tmp_path)                      # 2 scenes x 3 training views: 3 steps per epoch, 12 in all
    torch.set_num_threads(1)
    straight = load_file(str(finetune(FinetuneConfig(targets=(str(targets),), out=str(tmp_path / "straight"), **FLAGS))))
    cfg = dict(targets=(str(targets),), out=str(tmp_path / "killed"), **FLAGS)
    rng, kills = random.Random(0), 0
    for attempt in range(12):
        p = _child(cfg)
        first = p.stdout.readline()                      # the first step is done: training is under way
        if first.strip() == "" or first.strip() == "done":
            p.wait(); break
        if kills < 3:
            for _ in range(rng.randrange(0, 3)): p.stdout.readline()   # a few more steps
            time.sleep(rng.uniform(0, 0.03))             # then a random point inside a step or a save
            p.send_signal(signal.SIGKILL); p.wait(); kills += 1
            assert p.returncode == -signal.SIGKILL
            continue
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
        break
    assert kills == 3
    resumed = load_file(str(tmp_path / "killed" / "finetuned.safetensors"))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight), "a killed and resumed run differs from a straight one"
    assert not list((tmp_path / "killed").glob(".*.tmp")), "a temporary file was left behind"


def test_corrupt_files_are_named(tmp_path):
    targets = toy_targets(tmp_path)
    torch.set_num_threads(1)
    cfg = FinetuneConfig(targets=(str(targets),), out=str(tmp_path / "run"), **(FLAGS | dict(epochs=1)))
    w = finetune(cfg)
    ck = tmp_path / "run" / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])           # a truncated checkpoint
    with pytest.raises(ArtifactError, match="checkpoint.pt: fine-tuning checkpoint is corrupt, truncated"): finetune(cfg)
    ck.write_bytes(b"\x00" * 64)                                         # garbage
    with pytest.raises(ArtifactError, match="checkpoint.pt"): finetune(cfg)
    w.write_bytes(w.read_bytes()[:-100])                                 # truncated weights
    with pytest.raises(ArtifactError, match="finetuned.safetensors: fine-tuned weights are corrupt or truncated"):
        load_finetuned("tiny", w, pretrained=False, device="cpu")
    cache = targets / "scene0.safetensors"
    cache.write_bytes(cache.read_bytes()[:200])                          # truncated target cache
    with pytest.raises(ArtifactError, match="scene0.safetensors: not a readable safetensors target cache"):
        TargetViews.from_cache(targets)


def test_other_settings_refused_naming_both(tmp_path):
    targets = toy_targets(tmp_path)
    torch.set_num_threads(1)
    base = dict(targets=(str(targets),), out=str(tmp_path / "run"), **(FLAGS | dict(epochs=1)))
    finetune(FinetuneConfig(**base))
    with pytest.raises(ArtifactError, match=r"differing: settings\.lr; settings\.lr: 0\.001 \(saved\) vs 0\.002 \(now\)\); use another --out"): finetune(FinetuneConfig(**(base | dict(lr=2e-3))))
    finetune(FinetuneConfig(**(base | dict(epochs=2))))                 # more epochs continue the same run


def test_nan_never_reaches_a_checkpoint(tmp_path):
    targets = toy_targets(tmp_path)
    torch.set_num_threads(1)
    cfg = FinetuneConfig(targets=(str(targets),), out=str(tmp_path / "run"), **(FLAGS | dict(lr=1e30, log_every=5, save_every=2)))
    with pytest.raises(NonFiniteLoss, match="stopped before"): finetune(cfg)
    ck = tmp_path / "run" / "checkpoint.pt"
    if ck.exists():                                                      # whatever was saved is finite
        st = torch.load(ck, weights_only=True)["state"]["model"]
        assert all(torch.isfinite(v).all() for v in st.values() if v.is_floating_point())
    assert not (tmp_path / "run" / "finetuned.safetensors").exists()


def test_a_poisoned_state_never_counts_as_good(tmp_path):
    "lr 1e30: step 1's loss is finite, its update makes every weight ~1e30, step 2's loss is NaN; no checkpoint of those."
    targets = toy_targets(tmp_path)
    torch.set_num_threads(1)
    cfg = FinetuneConfig(targets=(str(targets),), out=str(tmp_path / "run"), **(FLAGS | dict(lr=1e30, save_every=1)))
    with pytest.raises(NonFiniteLoss, match="loss is nan"): finetune(cfg)
    ck = tmp_path / "run" / "checkpoint.pt"
    if ck.exists():
        st = torch.load(ck, weights_only=True)["state"]["model"]
        assert max(v.abs().max().item() for v in st.values() if v.is_floating_point()) < 1e6, "a poisoned checkpoint"


def test_one_run_per_folder_and_files_follow_the_umask(tmp_path):
    targets = toy_targets(tmp_path)
    torch.set_num_threads(1)
    out = tmp_path / "run"
    hold = f"import time; from fit3d.store import folder_lock\nwith folder_lock({str(out)!r}): print('held', flush=True); time.sleep(60)"
    other = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1])))
    try:
        assert other.stdout.readline().strip() == "held"
        with pytest.raises(ArtifactError, match=f"fine-tuning run is being written by pid {other.pid}"):
            finetune(FinetuneConfig(targets=(str(targets),), out=str(out), **(FLAGS | dict(epochs=1))))
    finally: other.kill(); other.wait()
    old = os.umask(0o027)
    try: w = finetune(FinetuneConfig(targets=(str(targets),), out=str(out), **(FLAGS | dict(epochs=1))))
    finally: os.umask(old)
    assert {oct(p.stat().st_mode & 0o777) for p in out.iterdir()} == {oct(0o640)}   # safetensors alone: 0600
    assert w.exists()
