"`fit3d` commands: every --help, tyro presets, and `fit3d probe --dataset X` on fixture files laid out as each data set."
import contextlib, io, json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fit3d.cli import main, _commands

MODELS = {"original", "duplicated", "finetuned", "combined"}


def help_text(*args) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit) as e: main([*args, "--help"])
    assert e.value.code in (0, None)
    return buf.getvalue()


def test_help_of_every_command():
    main([])  # the list of commands, without importing the stages
    for c in _commands(): assert "--" in help_text(c), c
    assert "--dataset" in help_text("probe") and "--dry-run" in help_text("reproduce")
    h = help_text("lift")
    assert all(p in h for p in ("reference", "fast", "tiny"))


def test_unknown_command_and_choice():
    with pytest.raises(SystemExit, match="unknown command 'nope'"): main(["nope"])
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as e:
        main(["probe", "--dataset", "mnist"])
    assert e.value.code == 2


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    "A 'fine-tuned' tiny ViT: the tiny ViT's own weights, saved as a timm state dict."
    from safetensors.torch import save_file
    from fit3d.features import load_backbone
    w = tmp_path_factory.mktemp("w") / "finetuned.safetensors"
    save_file({k: v.contiguous() for k, v in load_backbone("tiny", device="cpu").model.state_dict().items()}, str(w))
    return w


def _img(path: Path, size=(64, 48), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), np.uint8)).save(path)


def _labels(path: Path, size=(64, 48), n=3, dtype=np.uint8, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    lab = np.repeat(np.arange(size[0]) * n // size[0], size[1]).reshape(size[0], size[1]).T.astype(dtype)
    Image.fromarray(lab).save(path)


def ade20k_tree(root: Path) -> Path:
    for split in ("training", "validation"):
        for i in range(3):
            _img(root / "images" / split / f"ADE_{split}_{i:08d}.jpg", seed=i)
            _labels(root / "annotations" / split / f"ADE_{split}_{i:08d}.png", n=4)
    return root


def voc_tree(root: Path) -> Path:
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    for split, ids in (("train", ["2007_000001", "2007_000002"]), ("val", ["2007_000003", "2007_000004"])):
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
        for k, i in enumerate(ids):
            _img(root / "JPEGImages" / f"{i}.jpg", seed=k); _labels(root / "SegmentationClass" / f"{i}.png", n=3)
    return root


def kitti_tree(root: Path) -> Path:
    drive = "2011_09_26_drive_0001_sync"
    (root / "splits").mkdir(parents=True)
    for split, frames in (("eigen_train", (5, 6)), ("eigen_test", (7,))):
        lines = []
        for f in frames:
            img = f"2011_09_26/{drive}/image_02/data/{f:010d}.png"
            gt = f"train/{drive}/proj_depth/groundtruth/image_02/{f:010d}.png"
            _img(root / "raw" / img, size=(1242, 375), seed=f)
            (root / "data_depth_annotated" / gt).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((375, 1242), 256 * (5 + f), np.uint16)).save(root / "data_depth_annotated" / gt)
            lines.append(f"{img} {gt} 721.5377")
        (root / "splits" / f"{split}_files_with_gt.txt").write_text("\n".join(lines) + "\n")
    return root


def synthetic_tree(root: Path) -> Path:
    from fit3d.synthetic import make_benchmark
    make_benchmark(root, n_train_scenes=1, n_val_scenes=1, n_views=4, width=48, height=36, n_test=1, progress=False)
    return root


@pytest.mark.parametrize("name,make,groups", [
    ("ade20k", ade20k_tree, {"segmentation"}), ("voc", voc_tree, {"segmentation"}), ("kitti", kitti_tree, {"depth"}),
    ("synthetic", synthetic_tree, {"segmentation", "depth", "correspondence"})])
def test_probe_dataset_through_the_cli(tmp_path, weights, name, make, groups):
    data, out = make(tmp_path / name), tmp_path / "probe"
    args = ["probe", "--dataset", name, "--data", str(data), "--backbone", "tiny", "--finetuned", str(weights),
            "--iters", "3", "--long-side", "112", "--device", "cpu", "--out", str(out)]
    with contextlib.redirect_stderr(io.StringIO()): main(args)
    res = json.loads((out / "results.json").read_text())
    assert set(res) == MODELS | {"_key"} and res["_key"]["dataset"] == name
    assert all(set(res[m]) == groups for m in MODELS)
    md = (out / "results.md").read_text()
    assert md.splitlines()[2].startswith("| original |") and "original duplicated (control)" in md
    stamp = (out / "results.json").stat().st_mtime_ns
    with contextlib.redirect_stderr(io.StringIO()): main(args)           # the same inputs: nothing is probed again
    assert (out / "results.json").stat().st_mtime_ns == stamp
