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
    st, data = img.stat(), bytearray(img.read_bytes())
    os.utime(img, ns=(1, 1))                              # new dates, the same bytes: the same image
    assert len(TargetViews.from_cache(targets)) > 0
    data[len(data) // 2] ^= 0xFF; img.write_bytes(bytes(data))   # rewritten since the targets were made: same size,
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns))           # dates restored (as `cp -p`, `rsync -a` leave them)
    with pytest.raises(ArtifactError, match="target cache was made from other inputs .differing: images"):
        TargetViews.from_cache(targets)


def test_finetuned_weights_refuse_another_original(lifted, tmp_path):
    _, _, bb = lifted
    ok = export_weights(bb.model, tmp_path / "ok.safetensors", dict(start_weights=weights_digest(bb.model), settings={}),
                        "tiny", 1)
    check_base(ok, bb)
    other = export_weights(bb.model, tmp_path / "other.safetensors", dict(start_weights="0" * 16, settings={}), "tiny", 1)
    with pytest.raises(ArtifactError, match="fine-tuned from weights 0000000000000000"):
        check_base(other, bb)


def test_a_rewritten_image_with_its_old_stamp_is_a_new_image(tmp_path):
    "`cp -p` / `rsync -a` restore the size and mtime of a rewritten file: the feature cache must still see the change."
    import contextlib, io
    import numpy as np
    from PIL import Image
    from fit3d.features import load_backbone
    from fit3d.testing import toy_scene
    torch.set_num_threads(1)
    bb = load_backbone("tiny", pretrained=False, device="cpu")
    scene = toy_scene(tmp_path / "toy", n=2, width=56, height=42); im = scene.cameras[0].image_path
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (42, 56, 3), dtype=np.uint8)).save(im, compress_level=0)  # stored: fixed size
    old = extract_scene(bb, scene, tmp_path / "cache", progress=False)["v0"]
    st = im.stat()
    Image.fromarray(rng.integers(0, 255, (42, 56, 3), dtype=np.uint8)).save(im, compress_level=0)
    os.utime(im, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (im.stat().st_size, im.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    said = io.StringIO()
    with contextlib.redirect_stdout(said): new = extract_scene(bb, scene, tmp_path / "cache", progress=False)["v0"]
    assert "feature cache was made from other inputs (differing: scene.images" in said.getvalue()
    assert not torch.equal(old, new)
