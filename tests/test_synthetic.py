"Synthetic rooms: determinism, the files a scene holds, the benchmark index and resuming, beside the notebook checks."
import json
import numpy as np
import pytest
from fit3d.formats import read_scene
from fit3d.synthetic import CLASSES, make_benchmark, make_scene, scene_complete

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
