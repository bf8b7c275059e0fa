"Shared test data: a tiny posed scene lifted on the CPU; a command stopped as `timeout` stops it."
import os, subprocess, time
from pathlib import Path

import torch

from fit3d.testing import toy_posed_scene
from fit3d.features import load_backbone
from fit3d.formats import write_nerfstudio, read_scene
from fit3d.lift import LiftConfig, lift, save_lifted


def lift_ball(d, features, **cfg):
    "Write a 4-view ball scene under `d`, lift it from `features(backbone, scene)` (tiny ViT), save it to `d/lift`."
    torch.set_num_threads(1)
    write_nerfstudio(toy_posed_scene(d / "ball", n=4, width=84, height=56), d / "ball")
    scene = read_scene(d / "ball")                   # as Stage II reads it back
    bb = load_backbone("tiny", pretrained=False, device="cpu")
    feats = features(bb, scene)
    lf = lift(scene, feats, LiftConfig.tiny(**cfg), device="cpu", progress=False)
    save_lifted(lf, d / "lift")
    return scene, bb, feats, lf


def stop_when(cmd: list, marker: str, log: Path, after: float = 1.0, cwd=None, wait: float = 300) -> int:
    "Run `cmd`, output to `log`; `after` s after `marker` shows there, SIGTERM it (as `timeout` does); its exit code."
    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="200")
    with open(log, "w") as f:
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
        t = time.perf_counter()
        while marker not in log.read_text() and p.poll() is None and time.perf_counter() - t < wait: time.sleep(0.2)
        time.sleep(after)
        p.send_signal(15)
        return p.wait(timeout=120)
