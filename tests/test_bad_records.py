"""Records and files the stages read back, made hostile (issue 24 §3): a clear error naming the file, or a corrupt cache set
aside and recomputed; never a raw traceback, never a silently wrong number."""
import contextlib, io, json
from pathlib import Path

import numpy as np
import pytest
import torch

from fit3d.scene import SceneError


@pytest.mark.parametrize("text, problem", [("{oops", "lift record is not valid JSON"),
                                           ("[1, 2]", "lift record holds a list, expected an object"),
                                           ('{"scene": 5}', "its 'scene' is 5, expected the scene's path")])
def test_view_names_a_corrupt_lift_record(tmp_path, text, problem):
    from fit3d.viewer import lifted_scene_path
    (tmp_path / "lift.json").write_text(text)
    with pytest.raises(SceneError, match=rf"lift.json: {problem}"): lifted_scene_path(tmp_path)


@pytest.mark.parametrize("meta, problem", [({"train": 5}, r"its 'train' list is 5, expected a list of scene folders"),
                                           ({"train": [3]}, r"its 'train' list is \[3\], expected a list of scene folders")])
def test_benchmark_list_of_the_wrong_shape(tmp_path, meta, problem):
    from fit3d.datasets import synthetic
    (tmp_path / "benchmark.json").write_text(json.dumps(meta))
    with pytest.raises(SceneError, match=rf"benchmark.json: {problem}"): synthetic(tmp_path, "train")


@pytest.mark.parametrize("text", ["{not json", "[]"])
def test_a_corrupt_results_file_is_set_aside_and_recomputed(tmp_path, monkeypatch, text, capsys):
    import fit3d.protocol as protocol
    from fit3d.datasets import Samples
    from fit3d.demo import probe_models
    from fit3d.features import load_backbone
    sample = lambda i: dict(image=np.zeros((28, 28, 3), np.float32), labels=np.zeros((28, 28), np.int64))
    data = dict(train=Samples([0, 1], sample, ["a", "b"], "t"), val=Samples([0], sample, ["a", "b"], "v"), task="seg")
    monkeypatch.setattr(protocol, "run_probes", lambda sets, *a, **k: {n: {"mIoU": 0.5} for n in sets.rows})
    cache = tmp_path / "results.json"; cache.write_text(text)
    res = probe_models(dict(original=load_backbone("tiny", device="cpu")), data, 2, "cpu", cache=cache, progress=False)
    assert res["original"]["segmentation"] == {"mIoU": 0.5} and json.loads(cache.read_text()) == res
    assert (tmp_path / "results.unreadable-1.json").read_text() == text              # kept, not lost
    assert "results.json: probe results " in capsys.readouterr().out                  # and said


def test_cli_prints_the_feature_cache_it_wrote(tmp_path):
    from fit3d.cli import main
    from fit3d.formats import write_nerfstudio
    from fit3d.testing import toy_scene
    write_nerfstudio(toy_scene(tmp_path / "s", n=2, width=28, height=28), tmp_path / "s")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        main(["features", "--scenes", str(tmp_path / "s"), "--backbone", "tiny", "--device", "cpu",
              "--cache", str(tmp_path / "cache")])
    folder = Path(out.getvalue().strip().splitlines()[-1].split("features cached under ")[1])
    assert folder.is_dir() and (folder / "toy.safetensors").exists()


@pytest.mark.parametrize("dtype", [torch.int32, torch.bool])
def test_weights_that_are_not_floats_are_refused(tmp_path, dtype):
    from safetensors.torch import save_file
    from fit3d.features import load_backbone, load_weights
    m = load_backbone("tiny", device="cpu").model
    sd = {k: v.contiguous() for k, v in m.state_dict().items()}
    sd["pos_embed"] = (sd["pos_embed"] * 1000).to(dtype)
    save_file(sd, str(tmp_path / "w.safetensors"))
    with pytest.raises(ValueError, match=rf"w.safetensors: tensor pos_embed is {str(dtype)[6:]}, not floating point"):
        load_weights(m, tmp_path / "w.safetensors")
