#!/usr/bin/env bash
# Debian's Chromium for the dashboard test (headless); prints its path.
set -euo pipefail
for c in chromium chromium-browser; do
  if command -v "$c" >/dev/null 2>&1; then command -v "$c"; exit 0; fi
done
echo "chromium.sh: installing Debian's chromium" >&2
sudo_=""
[ "$(id -u)" -ne 0 ] && sudo_="sudo"
$sudo_ apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq chromium >&2
command -v chromium
