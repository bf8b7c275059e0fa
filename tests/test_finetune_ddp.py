"Stage II under torchrun: 2 CPU processes (gloo) give the result of 1 process with the same global batch; 3 that of 2."
import json, os, subprocess, sys
import torch
from safetensors.torch import load_file
from fit3d.finetune import FinetuneConfig, finetune
from fit3d.testing import toy_targets

FLAGS = dict(backbone="tiny", pretrained=False, lr=1e-3, epochs=2, batch_size=2, save_every=2, num_workers=0, progress=False)


def torchrun(processes: int, targets, out) -> subprocess.CompletedProcess:
    "`python -m fit3d.finetune` with FLAGS' settings under torchrun, `processes` CPU processes."
    cli = ["--targets", str(targets), "--out", str(out), "--backbone", "tiny", "--no-pretrained", "--lr", "1e-3",
           "--epochs", "2", "--batch-size", "2", "--save-every", "2", "--num-workers", "0", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
                        "-m", "fit3d.finetune", *cli], env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def test_two_processes_match_one(tmp_path):
    targets = toy_targets(tmp_path)                      # 2 scenes x 3 training views: 3 steps of 2 images per epoch
    torch.set_num_threads(1)
    one = load_file(str(finetune(FinetuneConfig(targets=(str(targets),), out=str(tmp_path / "one"), **FLAGS))))
    torchrun(2, targets, tmp_path / "two")
    out = tmp_path / "two"
    assert (out / "log.jsonl").exists() and (out / "config.json").exists()
    assert torch.load(out / "checkpoint.pt", weights_only=True)["state"]["step"] == 6
    two = load_file(str(out / "finetuned.safetensors"))
    # the same global batches and the loss normaliser summed over processes: only float summation order differs
    worst = max((one[k] - two[k]).abs().max().item() for k in one)
    assert worst < 1e-5, f"1 vs 2 processes differ by up to {worst}"


def test_three_processes_run_batch_two_as_two(tmp_path):
    "More processes than the batch divides over: the first 2 train as DDP on a subgroup, the third waits; same run as 2."
    targets = toy_targets(tmp_path)
    r3, r2 = torchrun(3, targets, tmp_path / "three"), torchrun(2, targets, tmp_path / "two")
    line = "Stage II: global batch 2 on 2 of 3 processes; the others wait"
    assert r3.stdout.count(line) == 1 and line.split(":")[0] + ": global" not in r2.stdout   # said once, by rank 0
    three, two = (load_file(str(tmp_path / d / "finetuned.safetensors")) for d in ("three", "two"))
    assert three.keys() == two.keys() and all(torch.equal(three[k], two[k]) for k in two)   # the same processes' sums
    ck3, ck2 = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=True)["state"] for d in ("three", "two"))
    assert ck3["step"] == ck2["step"] == 6 and all(torch.equal(ck3["model"][k], ck2["model"][k]) for k in ck2["model"])
    loss = lambda d: [json.loads(l)["loss"] for l in (tmp_path / d / "log.jsonl").read_text().splitlines()]
    assert loss("three") == loss("two") and len(loss("two")) > 0
