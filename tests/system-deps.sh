#!/usr/bin/env bash
# The programs the suite drives besides Python packages: Debian's chromium (the dashboard's
# browser tests) and prometheus with promtool (the dashboards' and alert rules' tests).
# Installs the missing ones with apt-get (as root, or through sudo); elsewhere it says what
# to install and fails, because the tests need them.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
{ command -v prometheus >/dev/null && command -v promtool >/dev/null; } || missing+=(prometheus)
[ ${#missing[@]} -eq 0 ] && exit 0
if command -v apt-get >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing ${missing[*]} (Debian packages) for the tests" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >/dev/null || {
        $sudo apt-get update -q >/dev/null
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${missing[@]}" >/dev/null
    }
    exit 0
fi
echo "the tests need: ${missing[*]} (install them with your package manager)" >&2
exit 1
