"`fit3d` commands: every --help, tyro presets, and `fit3d probe --dataset X` on fixture files laid out as each data set."
import contextlib, io, json
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> Path:
    "Every data set of the registry as a tiny tree in its official layout, at its usual folder under one root."
    from fit3d.dataset_fixtures import write_fixtures
    return write_fixtures(tmp_path_factory.mktemp("fixtures"))


@pytest.mark.parametrize("name,groups", [
    ("scannetpp", {"segmentation", "depth"}), ("scannet", {"segmentation", "depth"}), ("nyuv2", {"segmentation", "depth"}),
    ("ade20k", {"segmentation"}), ("voc", {"segmentation"}), ("kitti", {"depth"}),
    ("synthetic", {"segmentation", "depth", "correspondence"})])
def test_probe_dataset_through_the_cli(fixtures, weights, tmp_path, monkeypatch, name, groups):
    monkeypatch.chdir(fixtures)  # each data set at its default folder: no --data needed
    out = tmp_path / "probe"
    args = ["probe", "--dataset", name, "--backbone", "tiny", "--finetuned", str(weights), "--iters", "3",
            "--long-side", "56", "--device", "cpu", "--out", str(out), "--protocol", "quick"]  # the wiring, quickly
    with contextlib.redirect_stderr(io.StringIO()): main(args)
    res = json.loads((out / "results.json").read_text())
    assert set(res) == MODELS | {"_key"} and res["_key"]["dataset"] == name
    assert all(set(res[m]) == groups for m in MODELS)
    md = (out / "results.md").read_text()
    assert md.splitlines()[2].startswith("| original |") and "original duplicated (control)" in md
    stamp = (out / "results.json").stat().st_mtime_ns
    with contextlib.redirect_stderr(io.StringIO()): main(args)           # the same inputs: nothing is probed again
    assert (out / "results.json").stat().st_mtime_ns == stamp


def test_probe_defaults_to_the_official_protocol(fixtures, weights, tmp_path, monkeypatch):
    monkeypatch.chdir(fixtures)
    out = tmp_path / "probe"
    args = ["probe", "--dataset", "voc", "--backbone", "tiny", "--finetuned", str(weights), "--iters", "2",
            "--long-side", "56", "--device", "cpu", "--out", str(out)]
    with contextlib.redirect_stderr(io.StringIO()): main(args)
    assert json.loads((out / "results.json").read_text())["_key"]["protocol"] == "official"


def test_probe_data_names_a_missing_folder(tmp_path, monkeypatch):
    from fit3d.cli import probe_data
    from fit3d.scene import SceneError
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SceneError, match="ade20k data set not found"): probe_data("ade20k")
