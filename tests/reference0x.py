"""mmaction2 0.24.1 + mmcv 1.7.0 (the code behind the training recipes) as a reference, run in a subprocess.

The 0.x reference lives in ``.reference/mm0x`` (``bash tests/install_reference_0x.sh``). It cannot be imported in
the test process, which imports mmaction2 1.2.0 / mmcv 2.x under the same package names, so
:func:`run_reference_0x` runs a snippet of Python in a fresh interpreter with ``PYTHONPATH=.reference/mm0x``:
the snippet sees ``inputs`` (what the test passed, through a ``torch.save`` file) and fills ``outputs``, which comes
back through another file. The prelude restores ``numpy.int`` (0.24.1's ``SampleFrames`` uses it; numpy 1.24
removed it) and checks that the 0.x versions are the ones imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from support import REPO_ROOT

REFERENCE_0X = REPO_ROOT / ".reference" / "mm0x"
INSTALL_SCRIPT = "tests/install_reference_0x.sh"
CONFIGS_0X = REFERENCE_0X / "mmaction" / ".mim" / "configs" / "recognition" / "slowonly"
"""The 0.x SlowOnly configs shipped inside the mmaction2 0.24.1 wheel."""

_PRELUDE = """\
import sys
import warnings

import numpy as np
import torch

np.int = int  # mmaction2 0.24.1 uses np.int, which numpy 1.24 removed
warnings.filterwarnings("ignore")
import mmcv
import mmaction

assert mmcv.__version__ == "1.7.0" and mmaction.__version__ == "0.24.1", (mmcv.__file__, mmaction.__file__)
inputs = torch.load(sys.argv[1], weights_only=False)
outputs = {}
"""

_EPILOGUE = """
torch.save(outputs, sys.argv[2])
"""


def require_reference_0x() -> Path:
    """``.reference/mm0x``, or a test failure saying how to install it (never a skip)."""
    if not (REFERENCE_0X / "mmaction").is_dir() or not (REFERENCE_0X / "mmcv").is_dir():
        pytest.fail(
            f"the mmaction2 0.24.1 / mmcv 1.7.0 reference is missing from {REFERENCE_0X}; "
            f"run `bash {INSTALL_SCRIPT}` first",
            pytrace=False,
        )
    return REFERENCE_0X


def run_reference_0x(
    script: str, workdir: Path, inputs: Mapping[str, Any] | None = None, timeout: float = 600
) -> dict[str, Any]:
    """Run ``script`` against the 0.x reference in a subprocess; returns the ``outputs`` dict it filled.

    ``inputs`` (tensors, arrays, plain data) is visible to the script as ``inputs``; ``workdir`` holds the exchange
    files (use the test's ``tmp_path``).
    """
    root = require_reference_0x()
    workdir.mkdir(parents=True, exist_ok=True)
    in_path, out_path, code_path = workdir / "ref0x_in.pt", workdir / "ref0x_out.pt", workdir / "ref0x_script.py"
    torch.save(dict(inputs or {}), in_path)
    code_path.write_text(_PRELUDE + textwrap.dedent(script) + _EPILOGUE)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.run(
        [sys.executable, str(code_path), str(in_path), str(out_path)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"the 0.x reference script failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}\n{proc.stdout[-2000:]}"
        )
    outputs = torch.load(out_path, weights_only=False)
    in_path.unlink()  # the exchange files can be large (model states, batches); the script stays for reading
    out_path.unlink()
    return outputs
