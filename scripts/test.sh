#!/usr/bin/env bash
# Set up a virtual environment with everything the test suite needs, then run it.
# Usage: bash scripts/test.sh [pytest arguments]      (CI runs exactly this: .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

# The training-corpus, evaluation and shipped-voice tests need espeak-ng.
source scripts/espeak-ng.sh
ensure_espeak_ng "the tests that render speech with it will be skipped, those of the shipped voice will fail"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV" || {
        echo "could not create a virtual environment; on Debian: sudo apt-get install python3-venv" >&2
        exit 2
    }
fi
# lhotse (used by the tests to read our manifests back) needs PyTorch; a CPU build keeps this small.
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "${TORCH_SPEC:-torch==2.13.0}"
"$VENV/bin/pip" install -q -e '.[cpu,export,ray,test]'

exec "$VENV/bin/python" -m pytest "$@"
