#!/usr/bin/env bash
# Set up a virtual environment with the runtime only (no TensorFlow) and run the demo end to end.
# Usage: bash scripts/demo.sh [trtgen demo options]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-demo}

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV" || {
        echo "could not create a virtual environment; on Debian: sudo apt-get install python3-venv" >&2
        exit 2
    }
fi
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q -e '.[cpu]'
exec "$VENV/bin/trtgen" demo "$@"
