#!/usr/bin/env bash
# Debian's Chromium for the dashboard test (headless); prints its path.
set -euo pipefail
if command -v chromium-browser >/dev/null 2>&1; then command -v chromium-browser; exit 0; fi
exec bash "$(dirname "$0")/../need.sh" chromium chromium
