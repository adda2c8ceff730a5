#!/usr/bin/env bash
# Installs what the tests drive from Debian when it is missing (needs root, as on CI): chromium for
# the browser tests, strace for the test that no run touches the network (tests/test_no_network.py).
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v strace >/dev/null 2>&1 || missing+=(strace)
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "${missing[*]} not installed and this user cannot apt-get them: the tests that need them will be skipped" >&2
  exit 0
fi
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
