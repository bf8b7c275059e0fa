"README.md from nbs/index.ipynb: its markdown cells, and its visible code cells as Python blocks (`make readme`)."
import json, sys

def cell_text(c) -> str:
    "A cell's source without nbdev's `#|` directive lines; '' for hidden cells."
    lines = "".join(c["source"]).splitlines()
    dirs = [l for l in lines if l.startswith("#|")]
    if any(d.split()[1:2] in (["hide"], ["exporti"]) for d in dirs): return ""
    body = "\n".join(l for l in lines if not l.startswith("#|")).strip()
    if not body: return ""
    return body if c["cell_type"] == "markdown" else f"```python\n{body}\n```"

nb = json.load(open(sys.argv[1] if len(sys.argv) > 1 else "nbs/index.ipynb", encoding="utf-8"))
parts = [cell_text(c) for c in nb["cells"] if c["cell_type"] in ("markdown", "code")]
print("<!-- generated from nbs/index.ipynb by make readme: edit the notebook -->\n\n" + "\n\n".join(p for p in parts if p))
