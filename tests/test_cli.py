"`fit3d` commands: every --help, tyro presets, and `fit3d probe --dataset X` on fixture files laid out as each data set."
import contextlib, io, json, re
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
    from fit3d.datasets import probe_data
    from fit3d.scene import SceneError
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SceneError, match="ade20k data set not found"): probe_data("ade20k")


# ---- every setting is checked where it is made (issue 24 §4): the flag named, exit status 2, nothing run ----

BAD = [  # (command line, what tyro must say); each of these once ran into a deep error, or ran as if fine
    ("lift tiny --batch-views 0", "--batch-views must be >= 1, got 0"),            # ZeroDivisionError in the loop
    ("lift fast --render-scale 0", "--render-scale must be > 0, got 0.0"),
    ("lift --feature-dim 0", "--feature-dim must be >= 1, got 0"),
    ("lift tiny --sh-degree-interval 0", "--sh-degree-interval must be >= 1, got 0"),
    ("lift tiny --iterations -5", "--iterations must be >= 1, got -5"),             # ran zero steps
    ("lift tiny --near-plane -1", "--near-plane must be > 0, got -1.0"),
    ("lift tiny --lr-means-final 0", "--lr-means-final must be > 0, got 0.0"),     # log(0) in the schedule
    ("lift tiny --refine-every 0", "--refine-every must be >= 1, got 0"),
    ("lift tiny --downscale 0", "--downscale must be > 0, got 0.0"),
    ("lift tiny --device gpu0", "--device must be auto, cpu, cuda or cuda:<n>, got 'gpu0'"),
    ("features --batch-size 0", "--batch-size must be >= 1, got 0"),
    ("synth --width 0", "--width must be >= 16, got 0"),                           # ZeroDivisionError in the camera
    ("synth --views 6 --test-views 6", "--test-views (6) must be below --views (6)"),
    ("finetune --batch-size 0", "--batch-size must be >= 1, got 0"),               # ZeroDivisionError per epoch
    ("finetune --epochs 0", "--epochs must be >= 1, got 0"),                       # wrote the untrained weights
    ("finetune --flip 7", "--flip must be >= 0 and <= 1, got 7.0"),                # a probability of 7
    ("finetune --lr 0", "--lr must be > 0, got 0.0"),
    ("probe --iters 0", "--iters must be >= 1, got 0"),
    ("view --port 99999", "--port must be >= 0 and <= 65535, got 99999"),           # hung forever
    ("view --port -1", "--port must be >= 0 and <= 65535, got -1"),
    ("webdemo --port 70000", "--port must be >= 0 and <= 65535, got 70000"),
    ("demo --width 0", "--width must be >= 16, got 0"),
    ("demo --views 3", "--views must be >= 8, got 3"),
    ("demo --finetune-lr -1", "--finetune-lr must be > 0, got -1.0"),
    ("experiment --lift-views-per-step 0", "--lift-views-per-step must be >= 1, got 0"),
    ("experiment --max-seconds 0", "--max-seconds must be > 0, got 0.0"),
    ("reproduce --batch-size 0", "--batch-size must be >= 1, got 0"),
    ("reproduce --max-scenes 0", "--max-scenes must be >= 1, got 0"),
    ("reproduce --finetune-epochs 0", "--finetune-epochs must be >= 1, got 0"),
    ("pretrain --steps 0", "--steps must be >= 1, got 0"),
    ("pretrain --ema 2", "--ema must be >= 0 and <= 1, got 2.0"),
    ("pretrain --objective ibot", "--objective must be one of dino, supervised, got 'ibot'"),
]


@pytest.mark.parametrize("argv,said", BAD, ids=[a for a, _ in BAD])
def test_a_bad_setting_stops_the_command_naming_its_flag(argv, said, monkeypatch, tmp_path):
    monkeypatch.setenv("COLUMNS", "200"); monkeypatch.chdir(tmp_path)   # nothing may be written, anywhere
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as e:
        main(argv.split())
    assert e.value.code == 2, (e.value.code, err.getvalue()[-1000:])
    assert said in " ".join(err.getvalue().replace("│", " ").split()), err.getvalue()
    assert not list(tmp_path.iterdir())


def test_every_settings_dataclass_checks_its_values():
    "Walk the package: a settings dataclass (…Config, …Args, …Augment) must check its values when it is made."
    import dataclasses, importlib, inspect, pkgutil, fit3d
    from fit3d.store import SettingError
    found = {}
    for m in pkgutil.iter_modules(fit3d.__path__):
        mod = importlib.import_module(f"fit3d.{m.name}")
        for n, c in vars(mod).items():
            if inspect.isclass(c) and dataclasses.is_dataclass(c) and c.__module__ == mod.__name__ \
               and n.endswith(("Config", "Args", "Augment")):
                found[n] = c
    assert {"LiftConfig", "FinetuneConfig", "ProbeConfig", "DepthProbeConfig", "DemoConfig", "ExperimentConfig",
            "ReproduceConfig", "PretrainConfig", "SegAugment", "DepthAugment", "SynthArgs", "LiftArgs"} <= set(found)
    unchecked = [n for n, c in found.items() if not any("__post_init__" in vars(k) for k in c.__mro__[:-1])]
    assert not unchecked, f"settings dataclasses without __post_init__ checks: {unchecked}"
    from fit3d.probe import ProbeConfig, DepthProbeConfig
    from fit3d.protocol import SegAugment, DepthAugment
    for make, said in [(lambda: ProbeConfig(iters=0), "--iters must be >= 1"),
                       (lambda: ProbeConfig(schedule="step"), "--schedule must be one of cosine, poly"),
                       (lambda: DepthProbeConfig(min_depth=5.0, max_depth=1.0), "--min-depth (5.0) must be below"),
                       (lambda: DepthProbeConfig(head="bin"), "--head must be one of bins, regression"),
                       (lambda: SegAugment(crop=(512, 0)), "SegAugment.crop must be >= 1"),
                       (lambda: DepthAugment(flip=2), "DepthAugment.flip must be >= 0 and <= 1")]:
        with pytest.raises(SettingError, match=re.escape(said)): make()
