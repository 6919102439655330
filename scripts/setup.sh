#!/usr/bin/env bash
# One-time set-up, safe to rerun: a virtualenv in .venv with the pinned
# packages, and Debian's Icarus Verilog for the cocotb simulations.
# Sourced by scripts/main.sh and scripts/test.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup: Python >= 3.11 is needed ($py is $("$py" --version 2>&1))" >&2
    exit 1
fi

if ! command -v iverilog >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing Debian's iverilog"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog) >/dev/null
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        echo "setup: installing Debian's iverilog (sudo)"
        (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog) >/dev/null
    else
        echo "setup: Icarus Verilog is missing and this user cannot install it." >&2
        echo "       Run as root:  apt-get install -y iverilog   (RTL simulations need it)" >&2
        exit 1
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
