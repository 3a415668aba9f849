#!/usr/bin/env bash
# Debian's Chromium for the portal's browser tests (tests/portal/browser/), which Playwright
# drives through executable_path=/usr/bin/chromium: no browser is ever downloaded by Playwright.
#
#   scripts/chromium.sh install    install Debian's chromium when /usr/bin/chromium is missing
#
# As root (CI: a fresh Debian) it runs apt-get; otherwise it says what to run and fails, so a
# missing browser is a clear error and never a skipped test.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

case "${1:-install}" in
  install)
    if [ -x "$CHROMIUM" ]; then exit 0; fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "chromium.sh: $CHROMIUM not found; installing Debian's chromium" >&2
      apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
      test -x "$CHROMIUM"
    else
      echo "chromium.sh: $CHROMIUM not found: run 'apt-get install -y chromium' as root (the browser tests need it)" >&2
      exit 1
    fi
    ;;
  *)
    echo "usage: chromium.sh install" >&2
    exit 2
    ;;
esac
