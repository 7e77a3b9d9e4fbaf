#!/usr/bin/env bash
# Installs the headless browser of the dashboard's browser tests: Debian's chromium and
# chromium-driver (run by `make test`). Idempotent; needs root and apt-get. Where either is
# missing it says so and exits 0: the browser tests are then skipped with that reason.
set -uo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "setup_browser: chromium/chromedriver missing and no root apt-get here;" \
       "the browser tests will be skipped (install chromium chromium-driver to run them)"
  exit 0
fi
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq chromium chromium-driver >/dev/null \
  || { echo "setup_browser: apt-get install chromium chromium-driver failed"; exit 0; }
echo "setup_browser: chromium installed in $(( $(date +%s) - start )) s"
