"Dataset-reader checks on fixtures in the official layouts (no downloads)."
import json
import numpy as np
import pytest
from PIL import Image
from fit3d.datasets import ade20k, pascal_voc, kitti_depth, nyuv2, scannetpp, synthetic, Samples, resize_sample
from fit3d.scene import SceneError


def test_missing_roots_name_the_folder(tmp_path):
    with pytest.raises(SceneError, match="ADE20k image folder not found"):
        ade20k(tmp_path / "ADEChallengeData2016")
    with pytest.raises(SceneError, match="VOC label folder not found"):
        pascal_voc(tmp_path)
    with pytest.raises(SceneError, match="benchmark.json: benchmark list does not exist"):
        synthetic(tmp_path)
    with pytest.raises(SceneError, match="splits/nvs_sem_val.txt: split list does not exist"):
        scannetpp(tmp_path)
    with pytest.raises(SceneError, match="KITTI split list"):
        kitti_depth(tmp_path)


def test_kitti_depth_that_is_not_16_bit_fails(tmp_path):
    drive = "2011_09_26_drive_0001_sync"
    img = tmp_path / "raw" / "2011_09_26" / drive / "image_02" / "data"; img.mkdir(parents=True)
    gt = tmp_path / "data_depth_annotated" / "train" / drive / "proj_depth" / "groundtruth" / "image_02"; gt.mkdir(parents=True)
    Image.fromarray(np.zeros((375, 1242, 3), np.uint8)).save(img / "0000000005.png")
    Image.fromarray(np.zeros((375, 1242), np.uint8)).save(gt / "0000000005.png")
    ds = kitti_depth(tmp_path, "train")
    assert len(ds) == 1
    with pytest.raises(SceneError, match="must be a 16-bit PNG"):
        ds[0]


def test_kitti_without_kb_crop_keeps_full_frames(tmp_path):
    drive = "2011_09_26_drive_0001_sync"
    img = tmp_path / "raw" / "2011_09_26" / drive / "image_02" / "data"; img.mkdir(parents=True)
    gt = tmp_path / "data_depth_annotated" / "train" / drive / "proj_depth" / "groundtruth" / "image_02"; gt.mkdir(parents=True)
    Image.fromarray(np.zeros((375, 1242, 3), np.uint8)).save(img / "0000000005.png")
    Image.fromarray(np.full((375, 1242), 512, np.uint16)).save(gt / "0000000005.png")
    s = kitti_depth(tmp_path, "train", kb_crop=False)[0]
    assert s["depth"].shape == (375, 1242) and float(s["depth"][0, 0]) == 2.0


def test_nyu_v73_without_h5py_names_the_fix(tmp_path):
    pytest.importorskip("scipy")
    try:
        import h5py  # noqa: F401
        pytest.skip("h5py is installed")
    except ImportError:
        pass
    p = tmp_path / "nyu_depth_v2_labeled.mat"
    p.write_bytes(b"MATLAB 7.3 MAT-file".ljust(512, b" ") + b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(SceneError, match="install h5py"):
        nyuv2(p, "all", classes=894)


def test_samples_are_lazy_and_sliceable():
    calls = []
    s = Samples(list(range(10)), lambda i: calls.append(i) or dict(name=str(i)), ["a", "b"], "x")
    sub = s.subset(every=3, limit=2)
    assert len(sub) == 2 and calls == [] and sub.n_classes == 2
    assert sub[1]["name"] == "3" and calls == [3]
    assert [x["name"] for x in s[8:]] == ["8", "9"]


def test_resize_sample_keeps_dtypes():
    s = dict(image=np.random.rand(6, 8, 3).astype(np.float32), depth=np.random.rand(6, 8).astype(np.float32), labels=np.zeros((6, 8), np.int64))
    r = resize_sample(s, (12, 16))
    assert r["image"].shape == (12, 16, 3) and r["depth"].dtype == np.float32 and r["labels"].dtype == np.int64
