"Stale artifacts are never reused silently: each case a review found, on tiny CPU data."
import os

import pytest
import torch

from fit3d.features import extract_scene
from fit3d.finetune import TargetViews, export_weights, check_base
from fit3d.testing import toy_targets
from fit3d.lift import save_lifted
import fit3d.lift
from fit3d.store import ArtifactError, weights_digest
from conftest import lift_ball


@pytest.fixture(scope="module")
def lifted(tmp_path_factory):
    d = tmp_path_factory.mktemp("lifted")
    _, bb, feats, lf = lift_ball(d, lambda bb, s: extract_scene(bb, s, progress=False), iterations=10, holdout=False)
    assert feats.provenance["backbone"] == "tiny" and feats.provenance["weights"] == weights_digest(bb.model)
    return d, lf, bb


def test_lift_records_its_features_and_per_step_targets_check_the_backbone(lifted):
    d, lf, _ = lifted
    assert lf.meta["provenance"]["features"]["backbone"] == "tiny"
    assert len(TargetViews.from_lifted(d / "lift", 14, "tiny")) > 0
    with pytest.raises(ArtifactError, match="lifted from tiny features, but the model being tuned is tiny_noreg"):
        TargetViews.from_lifted(d / "lift", 14, "tiny_noreg")


def test_save_lifted_drops_the_old_record_first(lifted, tmp_path, monkeypatch):
    _, lf, _ = lifted
    out = tmp_path / "again"; save_lifted(lf, out)
    assert (out / "lift.json").exists()
    def broken(*a, **k): raise RuntimeError("disk full")
    monkeypatch.setattr(fit3d.lift, "write_splats_ply", broken)
    with pytest.raises(RuntimeError, match="disk full"): save_lifted(lf, out)
    assert not (out / "lift.json").exists()              # new Gaussians never stand beside an old record


def test_target_cache_refuses_a_regenerated_scene(tmp_path):
    targets = toy_targets(tmp_path)
    assert len(TargetViews.from_cache(targets)) > 0
    img = next((tmp_path / "scene0").glob("*.png"))
    os.utime(img, ns=(1, 1))                              # the scene's images rewritten since the targets were made
    with pytest.raises(ArtifactError, match="target cache was made from other inputs"):
        TargetViews.from_cache(targets)


def test_finetuned_weights_refuse_another_original(lifted, tmp_path):
    _, _, bb = lifted
    ok = export_weights(bb.model, tmp_path / "ok.safetensors", dict(start_weights=weights_digest(bb.model), settings={}),
                        "tiny", 1)
    check_base(ok, bb)
    other = export_weights(bb.model, tmp_path / "other.safetensors", dict(start_weights="0" * 16, settings={}), "tiny", 1)
    with pytest.raises(ArtifactError, match="fine-tuned from weights 0000000000000000"):
        check_base(other, bb)
