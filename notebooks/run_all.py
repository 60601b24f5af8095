"""Executes notebooks headlessly, as CI does: any cell error fails.

    python notebooks/run_all.py [notebooks/01_feature_tables.ipynb ...]

Without arguments it runs every notebook here, in order. The notebooks read
EDDY_DATA, EDDY_BIN and EDDY_REPO (see eddy_nb.py).
"""

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

here = Path(__file__).resolve().parent
paths = [Path(p) for p in sys.argv[1:]] or sorted(here.glob("[0-9][0-9]_*.ipynb"))
for path in paths:
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(
        book, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(here)}}
    )
    client.execute()
    print(f"ok {path.name}")
