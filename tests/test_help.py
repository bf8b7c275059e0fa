"Every command's `--help` runs, and every flag's help is whole: tyro reads a field's comment from its own line only."
import dataclasses, importlib, inspect, io, pkgutil, subprocess, sys, tokenize
from pathlib import Path

import pytest

import fit3d
from fit3d.cli import _commands, main


def settings_classes():
    "Every dataclass of the package: the stages' settings and the command line's own."
    for m in pkgutil.iter_modules(fit3d.__path__):
        mod = importlib.import_module(f"fit3d.{m.name}")
        for c in vars(mod).values():
            if inspect.isclass(c) and dataclasses.is_dataclass(c) and c.__module__ == mod.__name__: yield c


def field_comments(cls) -> list[tuple[str, str, str | None]]:
    "(field, its comment, the comment-only line right below it if any) for each field line of `cls`'s source."
    src = inspect.getsource(cls)
    toks = list(tokenize.generate_tokens(io.StringIO(src).readline))
    lines, out = src.splitlines(), []
    names = {f.name for f in dataclasses.fields(cls)}
    for i, t in enumerate(toks):
        if t.type == tokenize.COMMENT and i and toks[i - 1].start[0] == t.start[0]:   # an inline comment
            row = t.start[0]
            head = lines[row - 1].split(":")[0].strip()
            if head not in names: continue
            below = lines[row] if row < len(lines) else ""
            indent = lambda l: len(l) - len(l.lstrip())
            # a comment line indented past the field is its continuation; one at the field's indent heads the next field
            cont = below.strip().startswith("#") and indent(below) > indent(lines[row - 1])
            out.append((head, t.string.lstrip("# ").strip(), below.strip() if cont else None))
    return out


def balanced(s: str) -> bool:
    "Brackets closed and quotes paired: a sentence that was not cut off."
    depth = 0
    for ch in s:
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(ch, 0)
        if depth < 0: return False
    return depth == 0 and s.count('"') % 2 == 0 and s.count("`") % 2 == 0


def test_every_flags_help_is_one_whole_comment():
    bad = []
    for cls in settings_classes():
        for name, comment, below in field_comments(cls):
            if below is not None: bad.append(f"{cls.__name__}.{name}: continues on a comment line tyro does not read: {below!r}")
            elif not balanced(comment): bad.append(f"{cls.__name__}.{name}: cut off: {comment!r}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("command", sorted(_commands()))
def test_help_runs(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as e: main([command, "--help"])   # in this process: the imports are paid once
    assert e.value.code in (0, None), capsys.readouterr().err[-2000:]
    assert "--help" in capsys.readouterr().out


def test_the_console_script_runs():
    exe = str(Path(sys.executable).parent / "fit3d")   # the installed `fit3d` command
    r = subprocess.run([exe, "view", "--help"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "--help" in r.stdout, r.stderr[-2000:]
