"""README.md stays in sync with the index and with .ci/run."""

from __future__ import annotations

import re
import subprocess
import sys

from support import REPO_ROOT


def test_model_table_is_generated_from_the_index():
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "model_table.py")], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out in (REPO_ROOT / "README.md").read_text(), "run: python tools/model_table.py --write"


def test_ci_runs_the_readme_test_commands():
    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"## Running the tests\s+```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line.strip() for line in block.splitlines() if line.strip() and "venv" not in line]
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    for command in commands:
        assert command in ci, f".ci/run does not run the README's {command!r}"
