#!/usr/bin/env bash
# need.sh COMMAND PACKAGE: prints COMMAND's path, installing Debian's
# PACKAGE with apt first when the command is missing.
set -euo pipefail
cmd=$1 pkg=$2
if command -v "$cmd" >/dev/null 2>&1; then command -v "$cmd"; exit 0; fi
echo "need.sh: installing Debian's $pkg for $cmd" >&2
sudo_=""
[ "$(id -u)" -ne 0 ] && sudo_="sudo"
$sudo_ apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "$pkg" >&2
command -v "$cmd"
