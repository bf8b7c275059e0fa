"Synthetic rooms: determinism, the files a scene holds, the benchmark index and resuming, beside the notebook checks."
import json
from pathlib import Path
import numpy as np
import pytest
from fit3d.formats import read_scene
from fit3d.rooms import CLASSES
from fit3d.synthetic import make_benchmark, make_scene, scene_complete

TINY = dict(n_views=8, width=80, height=60, n_test=2, n_points=300)


def test_same_seed_same_scene_other_seed_other_scene(tmp_path):
    a, b, c = (make_scene(tmp_path / n, seed=s, **TINY) for n, s in (("a", 1), ("b", 1), ("c", 2)))
    for i in range(len(a)):
        np.testing.assert_array_equal(a.image(i), b.image(i))
        np.testing.assert_array_equal(a.labels(i), b.labels(i))
        np.testing.assert_allclose(a.cameras[i].c2w, b.cameras[i].c2w)
    np.testing.assert_array_equal(a.points, b.points)
    assert not np.array_equal(a.image(0), c.image(0))


def test_scene_files(tmp_path):
    s = make_scene(tmp_path / "s", seed=4, **TINY)
    assert s.classes == CLASSES and len(s.train) == 6 and len(s.test) == 2 and s.points.shape == (300, 3)
    for i in range(len(s)):
        d, lab, ins = s.depth(i), s.labels(i), s.instances(i)
        assert d.shape == (60, 80) and (d > 0.05).all() and (d < 10).all()      # every ray hits the closed room
        assert lab.min() >= 0 and lab.max() < len(CLASSES) and (ins > 0).all()
    meta = json.loads((tmp_path / "s" / "transforms.json").read_text())
    assert meta["depth_unit_scale_factor"] == pytest.approx(1e-3) and meta["ply_file_path"] == "points3D.ply"
    assert all(f["file_path"].startswith("images/") and f["label_file_path"].startswith("labels/") for f in meta["frames"])


def test_bad_split(tmp_path):
    with pytest.raises(ValueError, match="n_test=8"):
        make_scene(tmp_path / "s", seed=0, n_views=8, n_test=8)


def test_benchmark_resumes(tmp_path):
    kw = dict(n_train_scenes=1, n_val_scenes=1, n_views=4, width=48, height=32, n_test=1, n_points=100, progress=False)
    b = make_benchmark(tmp_path, **kw)
    index = json.loads((tmp_path / "benchmark.json").read_text())
    assert index["train"] == ["train_000"] and index["val"] == ["val_000"] and index["classes"] == CLASSES
    assert scene_complete(b["train"][0], seed=json.loads((b["train"][0] / "synthetic.json").read_text())["seed"],
                          n_views=4, width=48, height=32, n_test=1, n_points=100, hfov=70.0, shadows=True,
                          variety=1.0, cameras="walk")
    (b["val"][0] / "transforms.json").write_text("{half a fi")               # a run killed while writing
    t0 = (b["train"][0] / "transforms.json").stat().st_mtime_ns
    make_benchmark(tmp_path, **kw)
    assert (b["train"][0] / "transforms.json").stat().st_mtime_ns == t0       # kept
    assert len(read_scene(b["val"][0])) == 4                                   # remade
    make_benchmark(tmp_path, **{**kw, "n_views": 5})                           # other settings: remade
    assert len(read_scene(b["train"][0])) == 5


def test_variety_keeps_classic_rooms_and_varies_looks():
    from fit3d.rooms import make_room
    a, b = make_room(5, variety=0), make_room(5, variety=0)
    np.testing.assert_array_equal(a.prim_mat, b.prim_mat)
    assert a.light_rgb is None and a.ambient == 0.3                           # the classic white light
    rooms = [make_room(s) for s in range(30)]
    assert len({int(r.prim_mat[0, 0]) for r in rooms}) >= 3                   # wall families
    assert len({int(r.prim_mat[4, 0]) for r in rooms}) >= 3                   # floor families
    assert np.ptp([r.light_power for r in rooms]) > 0.5


def test_random_views_are_free_and_varied():
    from fit3d.rooms import make_room
    from fit3d.synthetic import random_views
    from fit3d.raycast import _Geometry
    import torch
    room = make_room(3)
    cams = random_views(room, 32, 40, 30, seed=np.random.default_rng(1))
    eyes = np.stack([c.center for c in cams])
    assert (eyes > 0.2).all() and (eyes < room.size - 0.2).all()
    t, _, _ = _Geometry(room).cast(torch.tensor(eyes, dtype=torch.float32),
                                   torch.tensor(np.stack([c.c2w[:3, 2] for c in cams])[:, None], dtype=torch.float32))
    assert (t > 0.79).all()                                                   # min_free along the optical axis
    assert len({round(c.fx, 3) for c in cams}) > 10 and np.ptp(eyes[:, 2]) > 0.8


def test_make_scene_random_cameras(tmp_path):
    s = make_scene(tmp_path / "r", seed=2, n_views=4, width=32, height=24, n_test=1, n_points=50, cameras="random")
    assert len(s) == 4
    with pytest.raises(ValueError, match="cameras='orbit'"):
        make_scene(tmp_path / "x", seed=2, n_views=4, n_test=1, cameras="orbit")


def test_scannetpp_tree_reads_back_in_one_frame(tmp_path):
    "The ScanNet++ layout: read through read_scene, every SfM observation lands in front of and inside its view."
    import pycolmap
    from fit3d.synthetic import make_scannetpp_tree
    tree = make_scannetpp_tree(tmp_path, n_train=1, n_val=1, width=48, height=36, views=6, seed=1)
    assert (tmp_path / "splits" / "nvs_sem_train.txt").read_text().split() == [tree["train"][0].name]
    assert (tmp_path / "metadata" / "semantic_benchmark" / "top100.txt").read_text().split() == CLASSES
    sc = tree["val"][0]
    meta = json.loads((sc / "dslr" / "nerfstudio" / "transforms_undistorted.json").read_text())
    assert meta["camera_model"] == "PINHOLE" and meta["has_mask"] is True and meta["k1"] == 0.0
    assert len(meta["frames"]) == 4 and len(meta["test_frames"]) == 2
    assert all(set(f) == {"file_path", "transform_matrix", "mask_path", "is_bad"} for f in meta["frames"])
    s = read_scene(sc)
    assert s.name == sc.name and s.train == [0, 1, 2, 3] and s.test == [4, 5]   # frames, test_frames
    assert len(read_scene(sc, holdout=False).train) == 6                          # merged when asked
    rec = pycolmap.Reconstruction(str(sc / "dslr" / "colmap"))
    cams = {c.name: c for c in s.cameras}
    n = 0
    for p in rec.points3D.values():
        for el in p.track.elements:
            c = cams[Path(rec.images[el.image_id].name).stem]
            y = np.linalg.inv(c.c2w) @ np.r_[p.xyz, 1]
            u, v = y[0] / y[2] * c.fx + c.cx, y[1] / y[2] * c.fy + c.cy
            assert y[2] > 0 and 0 <= u < c.width and 0 <= v < c.height
            assert np.hypot(*(np.array([u, v]) - rec.images[el.image_id].points2D[el.point2D_idx].xy)) < 0.01
            n += 1
    assert n > len(rec.points3D)                                              # most points are seen more than once
    d = s.depth(0) if s.cameras[0].depth_path else None
    assert d is None                                                          # depth lives in render_depth/, for the data-set reader
    from PIL import Image
    dep = np.array(Image.open(sc / "dslr" / "render_depth" / "DSC00001.png"))
    lab = np.array(Image.open(tmp_path / "semantics_2d" / "semantics" / sc.name / "DSC00001.JPG.png"))
    assert dep.dtype == np.uint16 and dep.shape == (36, 48) and 50 < np.median(dep) < 10000
    assert lab.dtype == np.uint8 and lab.max() < len(CLASSES)


def test_fit3d_reorganised_layout(tmp_path):
    "FiT3D's reorganize_data.py layout: scenes/<id>/{images, masks, points3D.txt, transforms_train.json}."
    import shutil
    from fit3d.synthetic import make_scannetpp_tree
    sc = make_scannetpp_tree(tmp_path / "release", n_train=1, n_val=0, width=40, height=30, views=5, seed=2)["train"][0]
    dst = tmp_path / "db" / "scannetpp" / "scenes" / sc.name
    dst.mkdir(parents=True)
    shutil.copytree(sc / "dslr" / "undistorted_images", dst / "images")
    shutil.copytree(sc / "dslr" / "undistorted_anon_masks", dst / "masks")
    shutil.copy(sc / "dslr" / "colmap" / "points3D.txt", dst / "points3D.txt")
    shutil.copy(sc / "dslr" / "nerfstudio" / "transforms_undistorted.json", dst / "transforms_train.json")
    a, b = read_scene(sc), read_scene(dst)
    assert b.name == sc.name and (b.train, b.test) == ([0, 1, 2], [3, 4]) and b.mask(0) is not None
    np.testing.assert_allclose(np.stack([c.c2w for c in a.cameras]), np.stack([c.c2w for c in b.cameras]), atol=1e-12)
    np.testing.assert_allclose(a.points, b.points, atol=1e-6)


def test_scannetpp_tree_resumes(tmp_path):
    from fit3d.synthetic import make_scannetpp_tree
    kw = dict(n_train=1, n_val=1, width=32, height=24, views=4, seed=3)
    tree = make_scannetpp_tree(tmp_path, **kw)
    tf = lambda p: p / "dslr" / "nerfstudio" / "transforms_undistorted.json"
    t0 = tf(tree["train"][0]).stat().st_mtime_ns
    tf(tree["val"][0]).unlink()                                                 # as if killed while writing it
    make_scannetpp_tree(tmp_path, **kw)
    assert tf(tree["train"][0]).stat().st_mtime_ns == t0 and tf(tree["val"][0]).exists()
    make_scannetpp_tree(tmp_path, **{**kw, "views": 5})                         # other settings: remade
    assert len(read_scene(tree["train"][0])) == 5
