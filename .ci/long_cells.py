"""Every code cell of nbs/*.ipynb over N lines (default 60, the house's limit), longest first: `python .ci/long_cells.py [N]`.

A cell that long reads as a code dump; split it at its ideas with a sentence between (the exported code unchanged)."""
import json, sys
from pathlib import Path

n = int(sys.argv[1]) if len(sys.argv) > 1 else 60
rows = []
for p in sorted(Path(__file__).resolve().parents[1].glob("nbs/*.ipynb")):
    for i, c in enumerate(json.loads(p.read_text(encoding="utf-8"))["cells"]):
        k = len("".join(c["source"]).splitlines())
        if c["cell_type"] == "code" and k > n: rows.append((k, f"nbs/{p.name}", i, c.get("id", "")))
for k, p, i, cid in sorted(rows, reverse=True): print(f"{k:4d}  {p}  cell {i}  id {cid}")
print(f"{len(rows)} code cells over {n} lines")
