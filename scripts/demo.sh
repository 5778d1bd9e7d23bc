#!/usr/bin/env bash
# Set up a virtual environment with the runtime only (no TensorFlow) and run the demo end to end.
# Usage: bash scripts/demo.sh [trtgen demo options]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-demo}

# The shipped voice reads phonemes: libespeak-ng turns the text into IPA.
source scripts/espeak-ng.sh
ensure_espeak_ng "the shipped voice cannot read text without it"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV" || {
        echo "could not create a virtual environment; on Debian: sudo apt-get install python3-venv" >&2
        exit 2
    }
fi
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q -e '.[cpu]'
exec "$VENV/bin/trtgen" demo "$@"
