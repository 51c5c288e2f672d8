"""`import detprune.select` stays light and independent of the other layers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import detprune.select as sel_pkg


def test_import_does_not_load_torch_or_faiss() -> None:
    code = (
        "import sys, detprune.select\n"
        "bad = [m for m in ('torch', 'faiss', 'sklearn', 'ripser', 'detprune.dataset',"
        " 'detprune.features')"
        " if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "", out.stdout


def test_select_never_imports_dataset_or_features() -> None:
    root = Path(sel_pkg.__file__).parent
    for path in root.glob("*.py"):
        text = path.read_text()
        for layer in ("dataset", "features", "export", "train", "report", "pipeline"):
            assert f"detprune.{layer}" not in text, path
            assert f"from ..{layer}" not in text, path
