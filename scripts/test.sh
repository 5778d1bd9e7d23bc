#!/usr/bin/env bash
# Set up a virtual environment with everything the test suite needs, then run it.
# Usage: bash scripts/test.sh [pytest arguments]      (CI runs exactly this: .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if ! command -v espeak-ng >/dev/null 2>&1; then
    # The training-corpus and evaluation tests render speech with espeak-ng (a Debian package).
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null
    else
        echo "espeak-ng is missing (sudo apt-get install espeak-ng); the tests that need it will be skipped" >&2
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV" || {
        echo "could not create a virtual environment; on Debian: sudo apt-get install python3-venv" >&2
        exit 2
    }
fi
# lhotse (used by the tests to read our manifests back) needs PyTorch; a CPU build keeps this small.
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "${TORCH_SPEC:-torch==2.13.0}"
"$VENV/bin/pip" install -q -e '.[cpu,export,test]'

exec "$VENV/bin/python" -m pytest "$@"
