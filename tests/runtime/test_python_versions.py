"""The model matrix in other Python installs: e.g. Python 3.12 / 3.13 with LiteRT and
numpy 2, where neither TensorFlow nor LCE installs.

Set BITLITE_TEST_PYTHONS to interpreters (os.pathsep-separated) in which
``pip install ./runtime`` of this checkout has run; each runs the bitlite_runtime
installed there (package and library as pip built them) on the LCE-converted models,
in one process, and must match LCE's x86 results bit for bit. Unset: skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from runtime_models import GUEST_SCRIPT, compare

PYTHONS = [p for p in os.environ.get("BITLITE_TEST_PYTHONS", "").split(os.pathsep) if p]
VERSIONS_SCRIPT = GUEST_SCRIPT + """
import json
import bitlite_runtime
print(json.dumps({"python": sys.version.split()[0], "numpy": np.__version__,
                  "host": bitlite_runtime.backend(), "library": str(bitlite_runtime.library_path())}))
"""


@pytest.mark.skipif(not PYTHONS, reason="BITLITE_TEST_PYTHONS is not set")
@pytest.mark.parametrize("python", PYTHONS)
def test_matrix_in_another_python_matches_lce(python, main_case, int8_case, tmp_path):
    cases = [main_case, int8_case]
    args = []
    for k, case in enumerate(cases):
        model, inputs = tmp_path / f"m{k}.tflite", tmp_path / f"x{k}.npz"
        model.write_bytes(case.model)
        np.savez(inputs, *case.inputs)
        args += [str(model), str(inputs)]
    out = tmp_path / "y.npz"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "BITLITE_"))}
    proc = subprocess.run([python, "-c", VERSIONS_SCRIPT, str(out), *args], env=env,
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    print(info)  # which Python, numpy and host ran (pytest -s shows it)
    assert Path(info["library"]).parent.name == "lib"  # the installed build, not this one
    data = np.load(out)
    for k, case in enumerate(cases):
        compare(case, [data[f"{k}_{j}"] for j in range(len(case.expected))], exact_float=True)
