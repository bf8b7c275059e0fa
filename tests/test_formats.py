"Reader round trips and bad-input errors, run by pytest beside the notebook checks."
import json
import numpy as np
import pytest
from fit3d.formats import read_nerfstudio, write_nerfstudio, read_colmap, read_scene
from fit3d.testing import toy_scene, write_colmap_text_fixture
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


# bad input (issue 11 §3): each a real malformed file, each error naming the file and the problem
def _toy_json(tmp_path):
    write_nerfstudio(toy_scene(tmp_path), tmp_path)
    return json.loads((tmp_path / "transforms.json").read_text())


def _write(tmp_path, meta, name="t.json"):
    (tmp_path / name).write_text(json.dumps(meta))
    return tmp_path / name


def test_frames_not_a_list(tmp_path):
    meta = _toy_json(tmp_path)
    with pytest.raises(SceneError, match=r"t.json: 'frames' is a dict, expected a list"):
        read_nerfstudio(_write(tmp_path, meta | dict(frames={"a": 1})))
    meta.pop("frames")
    with pytest.raises(SceneError, match=r"t.json: 'frames' is missing"):
        read_nerfstudio(_write(tmp_path, meta))


@pytest.mark.parametrize("value, problem", [("abc", "'abc', not a number"), (None, "None, not a number"), ("nan", "'nan', not a finite number")])
def test_bad_intrinsics(tmp_path, value, problem):
    meta = _toy_json(tmp_path)
    meta["fl_x"] = value
    with pytest.raises(SceneError, match=rf"t.json: fl_x of frame 0 \(v0.png\) is {problem}"):
        read_nerfstudio(_write(tmp_path, meta))


def test_ragged_and_non_rigid_matrices(tmp_path):
    meta = _toy_json(tmp_path)
    meta["frames"][1]["transform_matrix"] = [[1, 0, 0, 0], [0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    with pytest.raises(SceneError, match=r"t.json: transform_matrix of frame 1 \(v1.png\) is not a 4x4 array of numbers"):
        read_nerfstudio(_write(tmp_path, meta))
    meta = _toy_json(tmp_path)
    meta["frames"][2]["transform_matrix"][1][1] = 2.0
    with pytest.raises(SceneError, match=r"t.json: transform_matrix of frame 2 \(v2.png\) is not rigid"):
        read_nerfstudio(_write(tmp_path, meta))


def test_not_utf8(tmp_path):
    (tmp_path / "t.json").write_bytes(b'{"frames": [], "scene_name": "caf\xe9"}')
    with pytest.raises(SceneError, match=r"t.json: transforms file is not UTF-8"):
        read_nerfstudio(tmp_path / "t.json")


def test_zero_depth_scale(tmp_path):
    meta = _toy_json(tmp_path)
    with pytest.raises(SceneError, match=r"t.json: depth_unit_scale_factor is 0.0"):
        read_nerfstudio(_write(tmp_path, meta | dict(depth_unit_scale_factor=0)))


def test_depth_label_mask_files(tmp_path):
    from PIL import Image
    meta = _toy_json(tmp_path)
    Image.fromarray(np.full((24, 32), 7, np.uint8)).save(tmp_path / "d8.png")
    Image.fromarray(np.zeros((12, 16), np.uint16)).save(tmp_path / "small.png")
    meta["frames"][0] |= dict(depth_file_path="d8.png", label_file_path="small.png", mask_path="small.png")
    s = read_nerfstudio(_write(tmp_path, meta))
    with pytest.raises(SceneError, match=r"d8.png: depth PNG is uint8 \(2-D\), expected a 16-bit"):
        s.depth(0)
    with pytest.raises(SceneError, match=r"small.png: label map is 16x12 but its view \(v0\) is 32x24"):
        s.labels(0)
    with pytest.raises(SceneError, match=r"small.png: mask is 16x12"):
        s.mask(0)
    meta["frames"][0]["depth_file_path"] = "small.png"
    with pytest.raises(SceneError, match=r"small.png: depth map is 16x12"):
        read_nerfstudio(_write(tmp_path, meta)).depth(0)


@pytest.mark.parametrize("name", ["../../escape", "/etc/passwd", "a/b"])
def test_scene_name_cannot_escape(tmp_path, name):
    meta = _toy_json(tmp_path)
    s = read_nerfstudio(_write(tmp_path, meta | dict(scene_name=name)))
    assert "/" not in s.name and (tmp_path / s.name).resolve().parent == tmp_path.resolve()
    with pytest.raises(SceneError, match=r"t.json: '\.\.' cannot name a folder"):
        read_nerfstudio(_write(tmp_path, meta | dict(scene_name="..")))


def test_colmap_scene_named_after_project(tmp_path):
    from PIL import Image
    for proj in ("kitchen", "garden"):
        (tmp_path / proj / "images").mkdir(parents=True)
        for n in ("a.png", "b.png"): Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(tmp_path / proj / "images" / n)
        write_colmap_text_fixture(tmp_path / proj / "sparse" / "0")
    assert [read_scene(tmp_path / p).name for p in ("kitchen", "garden")] == ["kitchen", "garden"]
    assert read_colmap(tmp_path / "kitchen" / "sparse" / "0").name == "kitchen"
