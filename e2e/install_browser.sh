#!/usr/bin/env bash
# Install Debian's Chromium for the browser steps of `make e2e`, unless it is already there.
# Playwright's own browser download does not work on machines without general internet access,
# so the runner drives the distribution's build through playwright's executable_path.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
/usr/bin/chromium --version
