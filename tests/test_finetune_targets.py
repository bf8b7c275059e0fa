"Stage II targets rendered at every step (the official way) against cached ones, on a tiny lifted scene on the CPU."
import json

import pytest
import torch
import torch.nn.functional as F

from fit3d.features import iter_features
from fit3d.finetune import (FinetuneConfig, TargetViews, finetune, finetuned_record, write_scene_targets, RESAMPLE)
from fit3d.store import ArtifactError, weights_digest
from conftest import lift_ball


@pytest.fixture(scope="module")
def lifted(tmp_path_factory):
    d = tmp_path_factory.mktemp("lifted")
    train_features = lambda bb, s: {s.cameras[i].name: f for i, f in
                                    zip(s.train, iter_features(bb, (s.image(i) for i in s.train), dtype=torch.float32))}
    scene, bb, _, lf = lift_ball(d, train_features, iterations=20)
    digest = weights_digest(bb.model)
    for how in RESAMPLE: write_scene_targets(lf, scene, d / how / "ball.safetensors", "tiny", 14, digest, resample=how)
    return d, scene


def test_rendered_per_step_equals_bilinear_cache(lifted):
    d, scene = lifted
    live, cached = TargetViews.from_lifted(d / "lift", 14, "tiny"), TargetViews.from_cache(d / "bilinear")
    assert live.grid == cached.grid == (4, 6) and live.dim == cached.dim == 96
    j = {v: k for k, (_, v) in enumerate(cached.views)}
    for i, flip in ((0, True), (1, False)):
        a = live.to_device(torch.utils.data.default_collate([live[(i, flip)]]), "cpu")
        b = cached.to_device(torch.utils.data.default_collate([cached[(j[live.views[i][1]], flip)]]), "cpu")
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
        err = (a["target"] - b["target"]).abs().max() / a["target"].abs().max()
        assert err < 2e-3, f"rendered vs cached targets differ by {err:.2e} of the largest value (more than fp16 rounding)"


def test_area_and_bilinear_differ_but_agree(lifted):
    d, _ = lifted
    A, B = (TargetViews.from_cache(d / how) for how in ("area", "bilinear"))
    ta, tb = (torch.stack([x.target(i)[0].float() for i in range(len(x))]) for x in (A, B))
    cos = F.cosine_similarity(ta, tb, dim=1).mean().item()
    assert 0.5 < cos < 0.99999, cos                  # the same scene, sampled differently


def test_alpha_mask_is_an_option(lifted):
    d, _ = lifted
    official, alpha = (TargetViews.from_lifted(d / "lift", 14, "tiny", mask=m) for m in ("official", "alpha"))
    mo = official.to_device(torch.utils.data.default_collate([official[0]]), "cpu")["mask"]
    ma = alpha.to_device(torch.utils.data.default_collate([alpha[0]]), "cpu")["mask"]
    assert torch.all(mo == 1) and torch.all(ma <= mo) and ma.min() < 1   # the scene has no anonymisation mask


def test_finetune_on_rendered_targets(lifted, tmp_path):
    d, _ = lifted
    torch.set_num_threads(1)
    cfg = FinetuneConfig(lifted=(str(d / "lift"),), out=str(tmp_path / "run"), backbone="tiny", pretrained=False, lr=1e-3,
                         epochs=2, num_workers=0, progress=False, device="cpu", log_every=1)
    w = finetune(cfg)
    rec = finetuned_record(w)["provenance"]
    assert rec["target_kind"] == "rendered" and rec["settings"]["resample"] == "bilinear"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["provenance"]["key"] == rec["key"]
    with pytest.raises(ArtifactError, match="made from other inputs"):        # the same folder, other resampling
        finetune(FinetuneConfig(**(cfg.__dict__ | dict(resample="area"))))
    with pytest.raises(ValueError, match="either --targets"):
        finetune(FinetuneConfig(targets=(str(d / "bilinear"),), lifted=(str(d / "lift"),), backbone="tiny", pretrained=False))


def test_stage_two_trains_on_frames_and_on_test_frames_only_when_asked(tmp_path):
    "The official Stage II view list is `frames` only (write_viewinfo.py), though Stage I fitted `test_frames` too."
    from fit3d.features import load_backbone
    from fit3d.formats import read_scene, write_nerfstudio
    from fit3d.lift import LiftConfig, lift, save_lifted
    from fit3d.testing import toy_posed_scene
    torch.set_num_threads(1)
    s = toy_posed_scene(tmp_path / "ball", n=4, width=84, height=56); s.train, s.test = [0, 1, 2], [3]
    write_nerfstudio(s, tmp_path / "ball")                                  # frames 0-2, test_frames 3
    scene, bb = read_scene(tmp_path / "ball"), load_backbone("tiny", pretrained=False, device="cpu")
    feats = dict(zip([c.name for c in scene.cameras], iter_features(bb, map(scene.image, range(4)), dtype=torch.float32)))
    save_lifted(lift(scene, feats, LiftConfig.tiny(iterations=2, holdout=False), device="cpu", progress=False),
                tmp_path / "lift")                                           # the official lift: every view
    key = scene.name
    assert TargetViews.from_lifted(tmp_path / "lift", 14, "tiny").views == [(key, 0), (key, 1), (key, 2)]
    both = TargetViews.from_lifted(tmp_path / "lift", 14, "tiny", test_frames=True).views
    assert both == [(key, 0), (key, 1), (key, 2), (key, 3)]
    with pytest.raises(ValueError, match="--test-frames needs --lifted"):   # a cache has only the views it was written for
        finetune(FinetuneConfig(targets=(str(tmp_path / "targets"),), test_frames=True, out=str(tmp_path / "run")))
