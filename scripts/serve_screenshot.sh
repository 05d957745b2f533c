#!/usr/bin/env bash
# The README's picture of `hwaksan serve` (docs/serve.png): the browser test itself serves the page,
# generates 3 images from shapes_t2i in headless chromium and saves the page once they are in.
# Needs Debian's chromium (apt-get install chromium) and pip install -e ".[test,serve]".
set -euo pipefail
cd "$(dirname "$0")/.."
HWAKSAN_REQUIRE_BROWSER=1 HWAKSAN_SERVE_SCREENSHOT="$PWD/docs/serve.png" OMP_NUM_THREADS=1 \
  python -m pytest -q tests/test_serve_browser.py -k generate
