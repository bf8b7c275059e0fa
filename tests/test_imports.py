"""Modules stand on floors: the import graph of fit3d's modules (imports inside functions included) has no cycle, and no module imports the command line."""
import ast
from pathlib import Path

PKG = Path(__file__).parents[1] / "fit3d"

# The roof: the command line calls down into every module, and no module calls up into it (its concepts, the lift
# presets and the data set names, live with the stages and `fit3d.datasets`). Nothing else is excused.
ROOF = "cli"


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


def test_nothing_imports_the_command_line():
    g = import_graph()
    up = sorted(a for a, deps in g.items() if ROOF in deps and a != ROOF)
    assert not up, f"{up} import fit3d.{ROOF}: what they take from it belongs a floor below (the stages, datasets, store)"


def test_no_import_cycles():
    g = import_graph()
    assert not cycles(g), f"import cycles: {cycles(g)} (a helper that two modules share belongs a floor below both)"
