"""Chromium for `make test`: find it or install it, the flags for nbdev-test, and the closing line on what was skipped.

The viewer, the web demo, the notebooks' screenshots and kaleido's plot export need a real browser. Where none is
found, `make test` installs Debian/Ubuntu's `chromium` if it can (as root, with apt-get, as `.ci/run` does); where it
cannot, it runs everything else and ends with one line naming the browser checks it skipped and how to run them.
Under `CI=true` nothing is skipped: the browser checks run, and fail without a browser.

    python .ci/browser.py install   # find Chromium, else install it where possible
    python .ci/browser.py flags     # `--flags browser` for nbdev-test when Chromium is found (or under CI=true)
    python .ci/browser.py note      # after the tests: the skipped browser checks, in one line (nothing if none)
"""
import ast, json, os, shutil, subprocess, sys
from pathlib import Path

from fit3d.browser import find_chromium

ROOT = Path(__file__).resolve().parents[1]
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
HOW = "as root: apt-get install -y chromium (Debian/Ubuntu), or BROWSER_PATH=/path/to/chromium; then make test"


def install():
    "Install Debian/Ubuntu's chromium where none is found and this process may (root, apt-get)."
    if find_chromium(): return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print("make test: no Chromium found and no way to install it here (needs root and apt-get): " +
              ("under CI=true the browser checks still run, and fail" if CI else "the browser checks will be skipped"),
              flush=True)
        return
    print("make test: no Chromium found; installing Debian/Ubuntu's chromium (apt-get install -y chromium)", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    ok = subprocess.run("apt-get update -qq && apt-get install -y -qq chromium >/dev/null", shell=True, env=env).returncode == 0
    print(f"make test: Chromium installed at {find_chromium()}" if ok and find_chromium() else
          "make test: apt-get could not install chromium: " + ("under CI=true the browser checks still run, and fail"
                                                               if CI else "the browser checks will be skipped"), flush=True)


def browser_cells() -> dict:
    "Notebook name -> number of its cells flagged `#| browser`."
    out = {}
    for p in sorted((ROOT / "nbs").glob("*.ipynb")):
        cells = json.loads(p.read_text(encoding="utf-8")).get("cells", [])
        n = sum(c.get("cell_type") == "code" and any(l.strip() == "#| browser" for l in "".join(c["source"]).splitlines())
                for c in cells)
        if n: out[p.stem] = n
    return out


def browser_tests() -> dict:
    "Test file -> number of its tests that call `need_chromium()` (they skip without a browser)."
    out = {}
    for p in sorted((ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        n = sum(isinstance(f, ast.FunctionDef) and f.name.startswith("test") and
                any(isinstance(c, ast.Call) and getattr(c.func, "id", None) == "need_chromium" for c in ast.walk(f))
                for f in tree.body)
        if n: out[p.stem] = n
    return out


def note():
    "One line: the browser checks this run skipped, and the command that runs them (nothing if it skipped none)."
    if find_chromium() or CI: return
    cells, tests = browser_cells(), browser_tests()
    print(f"make test: passed WITHOUT its browser checks (no Chromium found): skipped {sum(cells.values())} notebook "
          f"cells ({', '.join(cells)}) and {sum(tests.values())} tests ({', '.join(tests)}); to run them: {HOW}")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "install": install()
    elif what == "flags": print("--flags browser" if find_chromium() or CI else "")
    elif what == "note": note()
    else: sys.exit(__doc__)
