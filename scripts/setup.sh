#!/usr/bin/env bash
# One-time set-up, safe to rerun: a virtualenv in .venv with the pinned
# packages, Debian's Icarus Verilog for the cocotb simulations, and Debian's
# GTKWave and Xvfb for the test that opens the waves in GTKWave.
# Sourced by scripts/main.sh and scripts/test.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup: Python >= 3.11 is needed ($py is $("$py" --version 2>&1))" >&2
    exit 1
fi

# Debian packages: Icarus Verilog (needed), GTKWave and Xvfb (optional: the test that
# opens the wave view in GTKWave on a virtual screen runs only where they are).
missing=()
command -v iverilog >/dev/null 2>&1 || missing+=(iverilog)
command -v gtkwave >/dev/null 2>&1 || missing+=(gtkwave)
command -v xvfb-run >/dev/null 2>&1 || missing+=(xvfb xauth)
apt_install() {   # apt-get as root or through sudo; false when this user cannot
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing Debian's $*"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@") >/dev/null
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        echo "setup: installing Debian's $* (sudo)"
        (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@") >/dev/null
    else
        return 1
    fi
}
if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}" || true
    if ! command -v iverilog >/dev/null 2>&1; then
        echo "setup: Icarus Verilog is missing and could not be installed." >&2
        echo "       Run as root:  apt-get install -y iverilog   (RTL simulations need it)" >&2
        exit 1
    fi
    if ! command -v gtkwave >/dev/null 2>&1 || ! command -v xvfb-run >/dev/null 2>&1; then
        echo "setup: GTKWave or Xvfb is missing (as root: apt-get install -y gtkwave xvfb xauth);" \
             "the test that opens the waves in GTKWave will be skipped" >&2
    fi
fi

stamp=".venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    echo "setup: creating .venv and installing the pinned packages"
    [ -d .venv ] || "$py" -m venv .venv
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -e ".[test]"
    rm -f .venv/.installed-*
    touch "$stamp"
fi
export PATH="$root/.venv/bin:$PATH"
