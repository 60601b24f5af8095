"""Executes notebooks headlessly, as CI does: any cell error fails, and so
does a notebook that plots (a cell uses `plt.`) but produced no image.

    python notebooks/run_all.py [notebooks/01_feature_tables.ipynb ...]

Without arguments it runs every notebook here, in order. The notebooks read
EDDY_DATA, EDDY_BIN and EDDY_REPO (see eddy_nb.py). The executed copies, with
their outputs and figures, are written to EDDY_NOTEBOOK_OUT (default
target/notebooks/ in the repository) for a person to open; the notebooks in
the repository stay without outputs.
"""

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

here = Path(__file__).resolve().parent
out_dir = Path(os.environ.get("EDDY_NOTEBOOK_OUT", here.parent / "target" / "notebooks"))
out_dir.mkdir(parents=True, exist_ok=True)
paths = [Path(p) for p in sys.argv[1:]] or sorted(here.glob("[0-9][0-9]_*.ipynb"))
failed = False
for path in paths:
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(
        book, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(here)}}
    )
    client.execute()
    plots = any("plt." in cell.source for cell in book.cells if cell.cell_type == "code")
    figures = sum(
        1
        for cell in book.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    )
    executed = out_dir / path.name
    nbformat.write(book, executed)
    if plots and figures == 0:
        print(f"FAILED {path.name}: it plots but produced no figure (executed copy: {executed})")
        failed = True
    else:
        print(f"ok {path.name}: {figures} figures (executed copy: {executed})")
sys.exit(1 if failed else 0)
