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


# hostile inputs (issue 24 §3): the readers never return a silently wrong scene
def _one_view(tmp_path, im, name="v.png", **save):
    "A one-view scene whose image is `im` (a PIL image), saved as `name`."
    from fit3d.scene import Camera, Scene
    p = tmp_path / name; im.save(p, **save)
    return Scene([Camera(im.width, im.width, im.width / 2, im.height / 2, im.width, im.height, np.eye(4), "v", p)])


def test_every_image_mode_reads_as_rgb(tmp_path):
    from PIL import Image
    rgb = np.zeros((24, 32, 3), np.uint8); rgb[:12] = (200, 30, 90); rgb[12:, :16] = (10, 250, 40)  # three colours
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    cases = {"P": (Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE), "p.png", rgb / 255),
             "CMYK": (Image.fromarray(rgb).convert("CMYK"), "c.tif", rgb / 255),
             "LA": (Image.fromarray(rgb).convert("LA"), "la.png", np.repeat(grey[..., None], 3, -1) / 255),
             "1": (Image.fromarray(rgb).convert("1", dither=Image.Dither.NONE), "b.png",
                   np.repeat((grey >= 128)[..., None], 3, -1).astype(float)),
             "I;16": (Image.fromarray((grey.astype(np.uint16) * 257)), "g16.png", np.repeat(grey[..., None], 3, -1) / 255),
             "I;16B": (Image.fromarray((grey.astype(np.uint16) * 257).astype(">u2")), "g16b.tif",   # big-endian TIFF
                       np.repeat(grey[..., None], 3, -1) / 255),
             "RGBA": (Image.fromarray(rgb).convert("RGBA"), "a.png", rgb / 255)}
    for mode, (im, name, want) in cases.items():
        got = _one_view(tmp_path, im, name).image(0)
        assert got.shape == (24, 32, 3) and got.dtype == np.float32, mode
        np.testing.assert_allclose(got, want, atol=1e-6, err_msg=mode)


@pytest.mark.parametrize("mode, what", [("I", "32-bit integer"), ("F", "32-bit float")])
def test_image_modes_without_a_white_level_are_refused(tmp_path, mode, what):
    from PIL import Image
    from fit3d.scene import validate
    s = _one_view(tmp_path, Image.fromarray(np.full((24, 32), 300, np.int32 if mode == "I" else np.float32)), "v.tif")
    with pytest.raises(SceneError, match=rf"v.tif: image mode {mode} \({what}\)"): s.image(0)
    with pytest.raises(SceneError, match=rf"v.tif: image mode {mode}"): validate(s)   # at load time, not mid-run


@pytest.mark.parametrize("where, model, extra, problem", [
    ("top", "OPENCV_FISHEYE", {}, "camera model OPENCV_FISHEYE is a fisheye model"),    # zero coefficients: still fisheye
    ("top", "EQUIRECTANGULAR", {}, "camera model EQUIRECTANGULAR is not a pinhole \\(perspective\\) camera model"),
    ("frame", None, dict(k1=0.2), "frame 1 \\(v1.png\\): camera model PINHOLE with lens distortion \\(k1=0.2\\)"),
    ("frame", "OPENCV_FISHEYE", {}, "frame 1 \\(v1.png\\): camera model OPENCV_FISHEYE is a fisheye model"),
    ("top", "BROWN", {}, "camera model 'BROWN' is not one fit3d knows")])
def test_camera_models_that_are_not_pinhole(tmp_path, where, model, extra, problem):
    meta = _toy_json(tmp_path)
    target = meta if where == "top" else meta["frames"][1]
    if model: target["camera_model"] = model
    target |= extra
    with pytest.raises(SceneError, match=rf"t.json: {problem}") as e: read_nerfstudio(_write(tmp_path, meta))
    if model != "EQUIRECTANGULAR" and model != "BROWN": assert "colmap image_undistorter" in str(e.value)


@pytest.mark.parametrize("line", ["1 SIMPLE_RADIAL_FISHEYE 32 24 30 16 12 0",
                                  "1 THIN_PRISM_FISHEYE 32 24 30 31 16 12 0 0 0 0 0 0 0 0",
                                  "1 OPENCV_FISHEYE 32 24 30 31 16 12 0 0 0 0"])
def test_colmap_fisheye_with_zero_coefficients_is_refused(tmp_path, line):
    d = write_colmap_text_fixture(tmp_path / "proj" / "sparse" / "0")
    (d / "cameras.txt").write_text(line + "\n")
    with pytest.raises(SceneError, match=rf"camera 1: camera model {line.split()[1]} is a fisheye model.*colmap image_undistorter "
                                         rf"--image_path .*proj/images --input_path .*proj/sparse/0"):
        read_colmap(d, check_files=False)


def test_images_are_read_only_inside_the_scene_folder(tmp_path):
    from PIL import Image
    scene = tmp_path / "scene"
    meta = _toy_json(scene)
    (tmp_path / "images").mkdir()
    for f in meta["frames"] + meta["test_frames"]:
        (scene / f["file_path"]).rename(tmp_path / "images" / f["file_path"])   # the images only beside the scene folder
    with pytest.raises(SceneError, match=r"scene/v0.png: image file does not exist \(also looked for .*scene/images/v0.png\)"):
        read_nerfstudio(scene / "transforms.json")
    for f in meta["frames"] + meta["test_frames"]: f["file_path"] = "../images/" + f["file_path"]   # the file says so
    assert len(read_nerfstudio(_write(scene, meta))) == 4


def test_colmap_quaternions(tmp_path):
    from PIL import Image
    (tmp_path / "images").mkdir()
    for n in ("a.png", "b.png"): Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(tmp_path / "images" / n)
    d = write_colmap_text_fixture(tmp_path / "sparse" / "0")
    text = (d / "images.txt").read_text()
    (d / "images.txt").write_text(text.replace("1 1 0 0 0 0 0 1 1 a.png", "1 0 0 0 0 0 0 1 1 a.png"))
    with pytest.raises(SceneError, match=r"sparse/0: image a.png has a zero rotation quaternion"): read_colmap(d)
    (d / "images.txt").write_text(text.replace("1 1 0 0 0 0 0 1 1 a.png", "1 0.5 0.5 0 0 0 0 1 1 a.png"))
    with pytest.warns(UserWarning, match=r"sparse/0: image a.png: rotation quaternion has norm 0.7071; normalised"):
        s = read_colmap(d)
    np.testing.assert_allclose(s.cameras[0].c2w[:3, :3], [[1, 0, 0], [0, 0, 1], [0, -1, 0]], atol=1e-9)  # 90 deg about x


def test_colmap_missing_image_names_the_paths_tried(tmp_path):
    d = write_colmap_text_fixture(tmp_path / "proj" / "sparse" / "0")
    with pytest.raises(SceneError, match=r"proj/sparse/0: image a.png \(and 1 more\) not found: looked in "
                                         r".*proj/images, .*proj/undistorted_images.*images_dir"):
        read_colmap(d)
    (tmp_path / "proj" / "images").mkdir()
    with pytest.raises(SceneError, match=r"image a.png \(and 1 more\) not found: looked in .*proj/images[,:]"):
        read_colmap(d)


@pytest.mark.parametrize("field, value, problem", [
    ("fl_x", 1e300, r"fx=1e\+300 is not a focal length for a 32x24 image"),
    ("cx", -1e6, r"principal point \(-1e\+06, 12\) is far outside its 32x24 image"),
    ("w", 64.9, r"w of frame 0 \(v0.png\) is 64.9, not a whole number of pixels"),
    ("test_filenames", 5, r"'test_filenames' is 5, expected a list of file names"),
    ("classes", "wall", r"'classes' is 'wall', expected a list of class names")])
def test_absurd_fields(tmp_path, field, value, problem):
    meta = _toy_json(tmp_path)
    with pytest.raises(SceneError, match=rf"t.json: .*{problem}"): read_nerfstudio(_write(tmp_path, meta | {field: value}))


def test_a_camera_far_away_from_the_scene(tmp_path):
    meta = _toy_json(tmp_path)
    meta["frames"][2]["transform_matrix"][0][3] = 1e300
    with pytest.raises(SceneError, match=r"t.json: view 2 \(v2\) is 1e\+300 from the other cameras"):
        read_nerfstudio(_write(tmp_path, meta))
    meta = _toy_json(tmp_path)
    for f in meta["frames"] + meta["test_frames"]: f["transform_matrix"][0][3] += 1e9   # all of them: float32 cannot
    with pytest.raises(SceneError, match=r"t.json: view 0 \(v0\) is at 1.0e\+09 from the origin"):
        read_nerfstudio(_write(tmp_path, meta))


def test_ply_colours_of_every_type(tmp_path):
    from plyfile import PlyData, PlyElement
    from fit3d.formats import read_ply, write_ply
    def ply(kind, cols):
        v = np.empty(2, [("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", kind), ("green", kind), ("blue", kind)])
        for k, c in zip(("red", "green", "blue"), np.asarray(cols).T): v[k] = c
        PlyData([PlyElement.describe(v, "vertex")]).write(str(tmp_path / "p.ply"))
        return tmp_path / "p.ply"
    want = [[255, 0, 128], [0, 255, 64]]
    assert read_ply(ply("u1", want))[1].tolist() == want
    assert read_ply(ply("u2", np.array(want) * 257))[1].tolist() == want     # 16-bit colours
    assert read_ply(ply("f4", np.array(want) / 255))[1].tolist() == want     # float colours in [0, 1]
    with pytest.raises(SceneError, match=r"p.ply: colours range over \[0, 300\]"): read_ply(ply("i4", [[300, 0, 0], [0, 0, 0]]))
    with pytest.raises(SceneError, match=r"p.ply: colours range over \[-1.0, 0.5\]"): read_ply(ply("f4", [[-1, 0, 0], [0, .5, 0]]))
    with pytest.raises(ValueError, match=r"q.ply: colours range over \[0, 256\]"):
        write_ply(tmp_path / "q.ply", np.zeros((2, 3)), np.array([[256, 0, 0], [0, 0, 0]]))


def test_a_very_long_scene_name_is_shortened_early(tmp_path):
    meta = _toy_json(tmp_path)
    a = read_nerfstudio(_write(tmp_path, meta | dict(scene_name="a" * 5000))).name
    b = read_nerfstudio(_write(tmp_path, meta | dict(scene_name="a" * 4999 + "b"))).name
    assert len(a.encode()) <= 96 and a != b and a.startswith("aaaa")   # still distinct, room for suffixes in a file name
    (tmp_path / (a + ".safetensors.12345.tmp")).write_text("")           # a file named after it can be written
    assert read_nerfstudio(_write(tmp_path, meta | dict(scene_name="room"))).name == "room"   # short names stay


def test_scannetpp_is_known_by_its_frames_wherever_it_lies(tmp_path):
    """A ScanNet++ transforms file moved out of dslr/nerfstudio/, or FiT3D's transforms_train.json without points3D.txt,
    is still read in the toolkit's world (not just OpenGL-flipped), and the missing SfM points are named in a warning."""
    import shutil, warnings
    from fit3d.synthetic_scannetpp import write_scannetpp_scene
    sc = write_scannetpp_scene(tmp_path / "release", "0a5c013435", seed=0, n_views=4, n_points=300)
    right = read_scene(sc)
    for name in ("transforms.json", "transforms_train.json"):      # elsewhere; FiT3D's name without points3D.txt
        d = tmp_path / name.split(".")[0]
        shutil.copytree(sc / "dslr" / "undistorted_images", d / "images")
        shutil.copytree(sc / "dslr" / "undistorted_anon_masks", d / "masks")
        shutil.copy(sc / "dslr" / "nerfstudio" / "transforms_undistorted.json", d / name)
        with pytest.warns(UserWarning, match=r"ScanNet\+\+ transforms file with no SfM points .*points3D.txt"):
            s = read_scene(d)
        for a, b in zip(s.cameras, right.cameras): np.testing.assert_allclose(a.c2w, b.c2w, atol=1e-9)
    meta = json.loads((tmp_path / "transforms" / "transforms.json").read_text())
    for f in meta["frames"] + meta["test_frames"]: f.pop("is_bad")   # not the toolkit's: the nerfstudio world
    (tmp_path / "transforms" / "transforms.json").write_text(json.dumps(meta))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = read_scene(tmp_path / "transforms")
    assert not np.allclose(s.cameras[0].c2w, right.cameras[0].c2w)
