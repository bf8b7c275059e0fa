"Reader round trips and bad-input errors, run by pytest beside the notebook checks."
import json
import numpy as np
import pytest
from fit3d.formats import read_nerfstudio, write_nerfstudio, read_colmap, write_colmap_text_fixture, read_scene, toy_scene
from fit3d.scene import SceneError


def test_nerfstudio_roundtrip(tmp_path):
    s = toy_scene(tmp_path, n=5)
    s2 = read_scene(write_nerfstudio(s, tmp_path))
    assert (s2.train, s2.test) == (s.train, s.test)
    np.testing.assert_allclose(np.stack([c.c2w for c in s2.cameras]), np.stack([c.c2w for c in s.cameras]), atol=1e-9)


def test_intrinsics_that_do_not_match_the_image(tmp_path):
    write_nerfstudio(toy_scene(tmp_path), tmp_path)
    meta = json.loads((tmp_path / "transforms.json").read_text())
    meta["w"] = 64
    (tmp_path / "t.json").write_text(json.dumps(meta))
    with pytest.raises(SceneError, match=r"v0.png: image is 32x24 but its intrinsics are for 64x24"):
        read_nerfstudio(tmp_path / "t.json")


def test_empty_scene(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps(dict(frames=[])))
    with pytest.raises(SceneError, match="t.json: scene has no views"):
        read_nerfstudio(tmp_path / "t.json")


def test_colmap_distortion_is_refused(tmp_path):
    d = write_colmap_text_fixture(tmp_path / "sparse")
    (d / "cameras.txt").write_text("1 SIMPLE_RADIAL 32 24 30 16 12 0.1\n")
    with pytest.raises(SceneError, match="lens distortion"):
        read_colmap(d, check_files=False)
