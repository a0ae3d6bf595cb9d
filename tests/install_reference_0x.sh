#!/usr/bin/env bash
# Install the 0.x training reference, mmaction2 0.24.1 + mmcv 1.7.0 as pure Python, into .reference/mm0x.
#
# The training tests compare against the code behind the upstream recipes (mmaction2 0.x), which cannot share a
# process with mmaction2 1.2.0 (the test reference in the venv): tests/reference0x.py runs it in a subprocess with
# PYTHONPATH=.reference/mm0x. mmcv 1.7.0 is only on PyPI as an sdist; it is built here without its compiled ops
# (MMCV_WITH_OPS=0) in a throwaway venv whose setuptools is older than 70 (mmcv 1.7.0's setup.py needs it).
# mmaction2 0.24.1 is a pure-Python wheel. Both go in with --no-deps: their runtime needs (numpy, opencv, addict,
# yapf, ...) are those of the test reference, already in the venv.
#
# Usage: bash tests/install_reference_0x.sh [--force]   (skips when the same versions are already installed)
set -euo pipefail
cd "$(dirname "$0")/.."

MMCV_VERSION=1.7.0
MMACTION2_VERSION=0.24.1
DEST=.reference/mm0x
STAMP="mmcv==$MMCV_VERSION mmaction2==$MMACTION2_VERSION"

if [[ "${1:-}" != "--force" && -f "$DEST/.installed" && "$(cat "$DEST/.installed")" == "$STAMP" ]]; then
    echo "0.x reference already installed in $DEST ($STAMP)"
    exit 0
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
python3 -m venv "$WORK/venv"
PIP="$WORK/venv/bin/python -m pip"
$PIP install --quiet --upgrade pip
$PIP install --quiet "setuptools<70" wheel
MMCV_WITH_OPS=0 $PIP wheel --quiet --no-deps --no-build-isolation --no-binary mmcv \
    "mmcv==$MMCV_VERSION" --wheel-dir "$WORK/wheels"
$PIP download --quiet --no-deps --only-binary :all: "mmaction2==$MMACTION2_VERSION" --dest "$WORK/wheels"

rm -rf "$DEST"
$PIP install --quiet --no-deps --target "$DEST" "$WORK"/wheels/*.whl
echo "$STAMP" > "$DEST/.installed"
echo "installed $STAMP into $DEST"
