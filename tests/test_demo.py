"`fit3d demo` end to end on tiny settings, through the console script: report written, re-run resumes."
import json, os, subprocess, sys, time
from pathlib import Path

TINY = ["--train-scenes", "2", "--val-scenes", "1", "--views", "8", "--width", "64", "--height", "48",
        "--lift-iterations", "20", "--finetune-epochs", "1", "--probe-iters", "20", "--device", "cpu"]


def fit3d(*args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    exe = Path(sys.executable).parent / "fit3d"
    r = subprocess.run([str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def test_demo_end_to_end_and_resume(tmp_path):
    out, data = tmp_path / "run", tmp_path / "data"
    t = time.perf_counter()
    fit3d("demo", "--out", str(out), "--data", str(data), *TINY, cwd=tmp_path)
    first = time.perf_counter() - t
    report = (out / "report.html").read_text()
    assert "Linear probes" in report and "data:image/png;base64" in report
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"_key", "original", "finetuned", "combined"}
    for r in (results[k] for k in ("original", "finetuned", "combined")):
        assert 0 <= r["segmentation"]["mIoU"] <= 1 and r["depth"]["rmse"] > 0
    assert (out / "finetune" / "finetuned.safetensors").exists()
    lifted = sorted((out / "lift").iterdir())
    assert len(lifted) == 2 and all((d / "lift.json").exists() for d in lifted)
    stamps = {d: (d / "lift.json").stat().st_mtime_ns for d in lifted}
    # a second run finds everything done: nothing is lifted, fine-tuned or probed again
    t = time.perf_counter()
    fit3d("demo", "--out", str(out), "--data", str(data), *TINY, cwd=tmp_path)
    assert {d: (d / "lift.json").stat().st_mtime_ns for d in lifted} == stamps
    assert time.perf_counter() - t < first
