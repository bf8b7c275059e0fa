"""Modules stand on floors: the import graph of fit3d's modules (imports inside functions included) has no cycle."""
import ast
from pathlib import Path

PKG = Path(__file__).parents[1] / "fit3d"

# Known for now: the command line's concepts (lift presets, data set names) that `experiment` and `reproduce` take from
# `cli`. The lead moves them down to the stages and `datasets`; then these two go, and the test keeps them gone.
EXPECTED = {("experiment", "cli"), ("reproduce", "cli")}


def fit3d_imports(path: Path) -> set:
    "The fit3d modules that the module at `path` imports anywhere in it: top level, inside functions, lazily."
    names = set()
    for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(n, ast.ImportFrom):
            mod = n.module or ""
            if n.level == 1 or mod == "fit3d" or mod.startswith("fit3d."):
                mod = mod.removeprefix("fit3d").lstrip(".") if n.level == 0 else mod
                names |= {mod.split(".")[0]} if mod else {a.name for a in n.names}   # `from . import x`
        elif isinstance(n, ast.Import):
            names |= {a.name.split(".")[1] for a in n.names if a.name.startswith("fit3d.")}
    return names


def import_graph(folder: Path = PKG) -> dict:
    "Module -> the fit3d modules it imports (itself and non-modules left out)."
    mods = {p.stem for p in folder.glob("*.py")}
    return {p.stem: (fit3d_imports(p) & mods) - {p.stem} for p in folder.glob("*.py")}


def cycles(g: dict) -> list:
    "The import cycles of `g`: its strongly connected components of more than one module (Tarjan's algorithm)."
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: out.append(sorted(comp))
    for v in sorted(g):
        if v not in index: visit(v)
    return out


def test_the_cycle_finder():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert fit3d_imports(PKG / "cli.py") >= {"demo", "lift"}   # imports inside functions count


def test_no_import_cycles():
    g = import_graph()
    for a, b in EXPECTED:
        assert b in g[a], f"{a} no longer imports {b}: take ({a!r}, {b!r}) out of EXPECTED"
        g[a].discard(b)
    assert not cycles(g), f"import cycles: {cycles(g)} (a helper that two modules share belongs a floor below both)"
