"Stage II under torchrun: 2 CPU processes (gloo) give the result of 1 process with the same global batch."
import os, subprocess, sys
import torch
from safetensors.torch import load_file
from fit3d.finetune import FinetuneConfig, finetune
from fit3d.testing import toy_targets

FLAGS = dict(backbone="tiny", pretrained=False, lr=1e-3, epochs=2, batch_size=2, save_every=2, num_workers=0, progress=False)


def test_two_processes_match_one(tmp_path):
    targets = toy_targets(tmp_path)                      # 2 scenes x 3 training views: 3 steps of 2 images per epoch
    torch.set_num_threads(1)
    one = load_file(str(finetune(FinetuneConfig(targets=(str(targets),), out=str(tmp_path / "one"), **FLAGS))))
    cli = ["--targets", str(targets), "--out", str(tmp_path / "two"), "--backbone", "tiny", "--no-pretrained", "--lr", "1e-3",
           "--epochs", "2", "--batch-size", "2", "--save-every", "2", "--num-workers", "0", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "fit3d.finetune", *cli], env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = tmp_path / "two"
    assert (out / "log.jsonl").exists() and (out / "config.json").exists()
    assert torch.load(out / "checkpoint.pt", weights_only=True)["state"]["step"] == 6
    two = load_file(str(out / "finetuned.safetensors"))
    # the same global batches and the loss normaliser summed over processes: only float summation order differs
    worst = max((one[k] - two[k]).abs().max().item() for k in one)
    assert worst < 1e-5, f"1 vs 2 processes differ by up to {worst}"
