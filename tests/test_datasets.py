"Dataset readers on fixtures in the official layouts (no downloads): every reader, every kind of bad input."
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fit3d.datasets import (DATASETS, Samples, kitti_depth, load_dataset, nyu_depth, nyuv2, pascal_voc, resize_sample,
                            scannetpp, synthetic)
from fit3d.dataset_fixtures import (FIXTURES, write_kitti, write_nyu_depth, write_nyu_mat, write_scannetpp,
                                    write_synthetic, write_voc)
from fit3d.scene import SceneError

CASES = [(name, task) for name, info in DATASETS.items() for task in info.tasks]


def _fixture(tmp_path, name, task) -> Path:
    "The fixture of `name` for `task`, written at its default folder under `tmp_path`; returns that folder."
    root = tmp_path / DATASETS[name].root(task)
    writers = FIXTURES[name]
    writers.get(task, next(iter(writers.values())))(root)
    return root


@pytest.mark.parametrize("name,task", CASES)
def test_every_reader_reads_its_official_layout(tmp_path, name, task):
    root = _fixture(tmp_path, name, task)
    for split in ("train", "val"):
        ds = load_dataset(name, task, split, root)
        assert len(ds) > 0, (name, task, split)
        s = ds[0]
        h, w = s["image"].shape[:2]
        assert s["image"].dtype == np.float32 and 0 <= s["image"].min() and s["image"].max() <= 1
        if task == "seg":
            assert s["labels"].shape == (h, w) and s["labels"].dtype == np.int64
            assert s["labels"].min() >= -1 and s["labels"].max() < (ds.n_classes or 10**6)
            assert DATASETS[name].n_classes in (None, ds.n_classes)
        else:
            assert s["depth"].shape == (h, w) and s["depth"].dtype == np.float32 and s["depth"].max() > 0


SPLIT_FILES = {("scannetpp", "seg"): "splits/nvs_sem_val.txt", ("scannetpp", "depth"): "splits/nvs_sem_val.txt",
               ("scannet", "seg"): "images/validation", ("scannet", "depth"): "scannet_val.txt",
               ("nyuv2", "seg"): "images/validation", ("nyuv2", "depth"): "nyu_test.txt",
               ("ade20k", "seg"): "images/validation", ("voc", "seg"): "ImageSets/Segmentation/val.txt",
               ("kitti", "depth"): "kitti_eigen_test.txt", ("synthetic", "seg"): "benchmark.json",
               ("synthetic", "depth"): "benchmark.json"}


@pytest.mark.parametrize("name,task", CASES)
def test_a_folder_without_its_split_files_names_the_file(tmp_path, name, task):
    root = _fixture(tmp_path, name, task)
    gone = root / SPLIT_FILES[name, task]
    if gone.is_dir():
        for p in gone.iterdir(): p.unlink()
        gone.rmdir()
    else: gone.unlink()
    with pytest.raises(SceneError) as e: load_dataset(name, task, "val", root)
    assert str(gone) in str(e.value) or str(gone.parent) in str(e.value)
    assert any(w in str(e.value) for w in ("does not exist", "not found"))


def test_a_missing_data_set_folder_says_where_it_belongs(tmp_path):
    with pytest.raises(SceneError, match="scannet data set not found"): load_dataset("scannet", "seg", root=tmp_path / "no")
    with pytest.raises(ValueError, match="kitti has no 'seg' task"): load_dataset("kitti", "seg", root=tmp_path)


def _depth_files(ds: Samples, root: Path) -> list[Path]:
    return [p for it in ds.items for p in (it if isinstance(it, tuple) else (it,))
            if isinstance(p, Path) and p.suffix == ".png" and "depth" in str(p.resolve().relative_to(root.resolve()))]


DEPTH_CASES = [(n, t) for n, t in CASES if t == "depth" and n != "synthetic"]   # synthetic depth is .npy (fit3d.formats)


@pytest.mark.parametrize("name,task", DEPTH_CASES)
def test_8_bit_depth_is_refused(tmp_path, name, task):
    root = _fixture(tmp_path, name, task)
    ds = load_dataset(name, task, "val", root)
    f = _depth_files(ds, root)[0]
    h, w = np.array(Image.open(f)).shape
    Image.fromarray(np.full((h, w), 200, np.uint8)).save(f)
    with pytest.raises(SceneError, match="depth must be a single-channel 16-bit PNG") as e: ds[0]
    assert str(f) in str(e.value)


@pytest.mark.parametrize("name,task", DEPTH_CASES)
def test_depth_of_the_wrong_size_is_refused(tmp_path, name, task):
    root = _fixture(tmp_path, name, task)
    ds = load_dataset(name, task, "val", root)
    f = _depth_files(ds, root)[0]
    Image.fromarray(np.full((5, 7), 1000, np.uint16)).save(f)
    with pytest.raises(SceneError, match=r"depth is 7x5 but its image .* is") as e: ds[0]
    assert str(f) in str(e.value)


LABEL_GLOBS = {"scannetpp": "semantics_2d/semantics/*/*.png", "scannet": "annotations/validation/*.png",
               "nyuv2": "annotations/validation/*.png", "ade20k": "annotations/validation/*.png",
               "voc": "SegmentationClass/*.png"}


# synthetic scenes go through fit3d.scene, which resamples maps to the camera's size (downscaled scenes)
@pytest.mark.parametrize("name", [n for n, t in CASES if t == "seg" and n != "synthetic"])
def test_label_maps_of_the_wrong_size_are_refused(tmp_path, name):
    root = _fixture(tmp_path, name, "seg")
    files = sorted(root.glob(LABEL_GLOBS[name]))
    assert files
    for f in files: Image.fromarray(np.zeros((3, 3), np.uint8)).save(f)
    with pytest.raises(SceneError, match=r"label|3x3|size") as e: load_dataset(name, "seg", "val", root)[0]
    assert any(str(f) in str(e.value) for f in files)


def test_zero_depth_scale_is_refused(tmp_path):
    from fit3d.datasets import depth_pairs, read_depth_png
    root = write_nyu_depth(tmp_path / "nyu")
    with pytest.raises(SceneError, match="depth scale must be positive"): depth_pairs(root, root / "nyu_train.txt", 0)
    with pytest.raises(SceneError, match="depth scale must be positive"):
        read_depth_png(root / "bathroom" / "sync_depth_00045.png", 0.0)


def test_scannetpp_images_without_targets_are_named_never_dropped(tmp_path):
    root = write_scannetpp(tmp_path / "scannetpp", n_images=3)
    (root / "data/1ada7a0617/dslr/render_depth/DSC00003.png").unlink()
    with pytest.raises(SceneError, match=r"1 of 3 images of scene 1ada7a0617 have no depth file: DSC00003.png"):
        scannetpp(root, "val", "depth")
    assert len(scannetpp(root, "val", "seg")) == 3                          # the labels are all there
    for f in (root / "semantics_2d/semantics/1ada7a0617").iterdir(): f.unlink()
    with pytest.raises(SceneError, match=r"3 of 3 images of scene 1ada7a0617 have no labels file"):
        scannetpp(root, "val", "seg")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert len(scannetpp(root, "val", "depth", missing="skip")) == 2    # skipping is asked for...
        with pytest.raises(SceneError, match="no image of 1 scene"):      # ...but never ends in an empty set
            scannetpp(root, "val", "seg", missing="skip")
    assert any("DSC00003.png; skipped" in str(x.message) for x in w)


def test_scannetpp_anonymised_pixels_are_ignored_and_size_is_applied(tmp_path):
    root = write_scannetpp(tmp_path / "scannetpp")
    s = scannetpp(root, "val")[0]
    assert s["labels"][-1, -1] == -1 and s["depth"][-1, -1] == 0 and s["depth"][0, 0] > 0
    r = scannetpp(root, "val", size=(584, 876))[0]
    assert r["image"].shape == (584, 876, 3) and r["labels"].shape == r["depth"].shape == (584, 876)
    Image.fromarray(np.full((4, 4), 255, np.uint8)).save(root / "data/1ada7a0617/dslr/undistorted_anon_masks/DSC00001.png")
    with pytest.raises(SceneError, match="mask is 4x4"): scannetpp(root, "val")[0]


def test_names_from_lists_never_leave_their_folder(tmp_path):
    nyu = write_nyu_depth(tmp_path / "nyu")
    (nyu / "nyu_test.txt").write_text("/../../etc/x.jpg /../../etc/x.png 518.8579\n")
    with pytest.raises(SceneError, match="would leave"): nyu_depth(nyu, "test")
    kitti = write_kitti(tmp_path / "kitti")
    (kitti / "kitti_eigen_test.txt").write_text("/etc/../../x.png 2011/x.png 721\n")
    with pytest.raises(SceneError, match="would leave"): kitti_depth(kitti)
    voc = write_voc(tmp_path / "VOC2012")
    (voc / "ImageSets/Segmentation/val.txt").write_text("../../../secret\n")
    with pytest.raises(SceneError) as e: pascal_voc(voc, "val")[0]
    assert str(voc / "JPEGImages") in str(e.value)                          # sanitised: looked for inside the folder
    spp = write_scannetpp(tmp_path / "scannetpp")
    (spp / "splits/nvs_sem_val.txt").write_text("../../../tmp\n")
    with pytest.raises(SceneError, match="image folder not found") as e: scannetpp(spp, "val")
    assert str((spp / "data").resolve()) in str(e.value)
    syn = write_synthetic(tmp_path / "synthetic")
    (syn / "benchmark.json").write_text(json.dumps({"train": ["train_000"], "val": ["../synthetic"]}))
    with pytest.raises(SceneError) as e: synthetic(syn, "val")
    assert str(syn.resolve()) in str(e.value)


def test_labels_beyond_the_classes_are_refused(tmp_path):
    root = _fixture(tmp_path, "nyuv2", "seg")
    f = sorted((root / "annotations/validation").glob("*.png"))[0]
    Image.fromarray(np.full((48, 64), 14, np.uint8)).save(f)
    with pytest.raises(SceneError, match="label 14 is beyond the 13 classes"): nyuv2(root)[0]


def test_nyu_mat_13_and_40_classes(tmp_path):
    pytest.importorskip("scipy")
    m = write_nyu_mat(tmp_path / "nyuv2")
    s13, s40 = nyuv2(m, "test")[0], nyuv2(m, "test", classes=40)[0]
    assert s13["labels"][0, :3].tolist() == [-1, 11, 9] and s40["labels"][0, :3].tolist() == [-1, 0, 13]
    with pytest.raises(ValueError, match="13, 40 or 894"): nyuv2(m, classes=37)


def test_kitti_without_kb_crop_keeps_full_frames(tmp_path):
    root = write_kitti(tmp_path / "kitti")
    s = kitti_depth(root, kb_crop=False)[0]
    gt = np.array(Image.open(root / "gt_depth/2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png"))
    assert s["depth"].shape == (375, 1242) and np.allclose(s["depth"], gt / 256.0)


def test_samples_are_lazy_and_sliceable():
    calls = []
    s = Samples(list(range(10)), lambda i: calls.append(i) or dict(name=str(i)), ["a", "b"], "x")
    sub = s.subset(every=3, limit=2)
    assert len(sub) == 2 and calls == [] and sub.n_classes == 2
    assert sub[1]["name"] == "3" and calls == [3]
    assert [x["name"] for x in s[8:]] == ["8", "9"]


def test_resize_sample_keeps_dtypes():
    s = dict(image=np.random.rand(6, 8, 3).astype(np.float32), depth=np.random.rand(6, 8).astype(np.float32),
             labels=np.zeros((6, 8), np.int64))
    r = resize_sample(s, (12, 16))
    assert r["image"].shape == (12, 16, 3) and r["depth"].dtype == np.float32 and r["labels"].dtype == np.int64


def test_scannetpp_newer_releases_resized_folders_are_found(tmp_path):
    "Newer ScanNet++ releases ship resized_undistorted_images/ and resized_undistorted_masks/: both readers find them."
    from fit3d.formats import read_scene
    from fit3d.synthetic_scannetpp import write_scannetpp_scene
    root = write_scannetpp(tmp_path / "scannetpp")
    d = root / "data/1ada7a0617/dslr"
    (d / "undistorted_images").rename(d / "resized_undistorted_images")
    (d / "undistorted_anon_masks").rename(d / "resized_undistorted_masks")
    s = scannetpp(root, "val")[0]
    assert s["labels"][-1, -1] == -1 and s["depth"][-1, -1] == 0   # the mask was found and applied
    scene = write_scannetpp_scene(tmp_path / "release", "0a5c013435", seed=0, n_views=4, n_points=300)
    d = scene / "dslr"
    (d / "undistorted_images").rename(d / "resized_undistorted_images")
    (d / "undistorted_anon_masks").rename(d / "resized_undistorted_masks")
    sc = read_scene(scene)
    assert {p.parent.name for p in (c.image_path for c in sc.cameras)} == {"resized_undistorted_images"}
    assert any(c.mask_path is not None and c.mask_path.parent.name == "resized_undistorted_masks" for c in sc.cameras)
