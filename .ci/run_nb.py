"""Run notebooks in place and save them with their outputs, as a reader sees them (`make run-nb NB=nbs/07_probe.ipynb`).

Cells flagged with a `tst_flags` flag that is not asked for (`#| cuda` on a CPU machine, say) are not run: they keep
the outputs saved when they last ran where they can (the device), so a CPU rerun never overwrites a GPU figure with an
error. `--flags slow` runs the slow cells too; `browser` cells run wherever Chromium is found. Cells marked `#| eval: false` are skipped as nbdev-test skips them.
Afterwards `nbdev-clean` strips metadata and keeps the outputs.

    python .ci/run_nb.py nbs/07_probe.ipynb [nbs/....ipynb ...] [--flags slow] [--only-missing]
"""
import argparse, os, re, subprocess, sys, time
from pathlib import Path


ALL_FLAGS = ("cuda", "slow", "browser")


def directives(cell) -> list[str]:
    "A cell's `#|` directive lines, stripped."
    return [l[2:].strip() for l in cell.source.splitlines() if l.startswith("#|")]


def skipped(cell, flags: set) -> bool:
    "Whether the cell stays as saved: a flag not asked for, or `eval: false`."
    for d in directives(cell):
        if d in ALL_FLAGS and d not in flags: return True
        if re.fullmatch(r"eval:\s*false", d): return True
    return False


def run_in_process(path: Path, flags: set, timeout: int = 1800) -> float:
    "As `run`, in this process through execnb's shell (what nbdev-test uses): for machines without a Jupyter kernel."
    from execnb.shell import CaptureShell
    from fastcore.nbio import read_nb, write_nb
    nb, here = read_nb(path), os.getcwd()
    shell, t = CaptureShell(), time.perf_counter()
    os.chdir(path.parent)
    try: shell.run_all(nb, exc_stop=True, preproc=lambda c: c.cell_type != "code" or skipped(c, flags), cell_timeout=timeout)
    finally: os.chdir(here)
    write_nb(nb, path)
    return time.perf_counter() - t


def run(path: Path, flags: set, timeout: int = 1800) -> float:
    "Execute `path` in place from its own folder (as nbdev-test does); the seconds it took."
    # no ipywidgets in the kernel: tqdm's notice about it is noise in a saved chapter
    os.environ.setdefault("PYTHONWARNINGS", "ignore:IProgress not found")
    try: import nbformat; from nbclient import NotebookClient
    except ImportError: return run_in_process(path, flags, timeout)   # the device machine: no Jupyter there
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    t = time.perf_counter()
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or skipped(cell, flags): continue
            client.execute_cell(cell, i)
    nbformat.write(nb, path)
    return time.perf_counter() - t


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--flags", nargs="*", default=[], help="tst_flags whose cells run too (e.g. slow)")
    ap.add_argument("--no-clean", action="store_true", help="leave nbdev-clean to a later step (no nbdev on the machine)")
    a = ap.parse_args()
    from fit3d.browser import find_chromium
    if find_chromium(): a.flags.append("browser")   # a browser's pictures are taken wherever one is
    for p in a.notebooks:
        print(f"{p}: {run(p, set(a.flags)):.0f} s", flush=True)
    if a.no_clean: sys.exit(0)
    for p in a.notebooks: subprocess.run(["nbdev-clean", "--fname", str(p)], check=True)  # one name per call
