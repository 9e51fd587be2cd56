#!/usr/bin/env bash
# Makes sure Debian's Chromium is at /usr/bin/chromium for the browser tests (tests/browser).
# Playwright drives it through executable_path; we never run `playwright install` (no downloads
# outside the package registries). Installs with apt-get only when missing and we are root;
# otherwise says what to do and exits 0 so that the browser tests report the missing browser.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "ensure_chromium: $CHROMIUM is missing and we are not root; install it with: sudo apt-get install chromium" >&2
    exit 0
fi
echo "ensure_chromium: installing Debian chromium (apt-get)..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
"$CHROMIUM" --version >&2
