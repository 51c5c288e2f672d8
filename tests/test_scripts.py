"""The prepared GPU check (scripts/gpu_check.py) runs end to end on its CPU test path.

It is meant to be run blind, in one call, on a CUDA host; a broken script would waste
that host's time, so its torch code path is exercised here at tiny sizes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_on_the_torch_cpu_path(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--device", "torch-cpu",
         "--scale", "200", "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())["rows"]
    phases = [(r["phase"], r["what"]) for r in rows]
    assert phases == [
        ("agreement", "mms picks"), ("agreement", "eps of the picks"),
        ("reference", "mms"), ("reference", "eps of the picks"),
        ("target", "mms (probe)"), ("target", "eps (probe picks)"),
        ("target", "mms"), ("target", "mms + eps"),
    ]
    assert all(r["identical"] for r in rows if "identical" in r)
    assert rows[-1]["n"] == 5000 and rows[-1]["k"] == 500
    assert "target 300 s" in proc.stdout


def test_gpu_check_skips_the_full_target_outside_its_budget(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--device", "torch-cpu",
         "--scale", "200", "--budget", "0", "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = json.loads(out.read_text())["rows"][-1]
    assert last["what"] == "mms + eps" and last["skipped"] and last["estimate_s"] > 0
    assert "skipped: estimated" in proc.stdout
