#!/usr/bin/env bash
# Installs everything medlora needs on a fresh Debian 12 machine (run as root, or with sudo for the apt step):
#   1. libtorch: a pip PyTorch 2.x (what GPU users have; this image's pip installs it offline from its wheel store),
#      falling back to Debian's libtorch-dev 1.13 + OpenBLAS when pip cannot provide torch;
#   2. npm ci: the npm packages, the native addon (native/build.mjs) and the compiled TypeScript (dist/).
# Safe to run again: steps that are already done are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- libtorch (owned by the engine) --------------------------------------------------------------------------------
# native/build.mjs looks in this order: $LIBTORCH, $PYTHON / python3 with torch, ./.torch-venv (made below when the
# system python refuses pip installs, PEP 668), then Debian's /usr/include/torch.
venv=.torch-venv
py_has_torch() { "$1" -c 'import torch' >/dev/null 2>&1; }
have_system_torch() { [ -f /usr/include/torch/csrc/api/include/torch/torch.h ]; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "setup: need root (or sudo) for: $*" >&2; return 1; fi; }
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq && as_root apt-get install -y -qq "$@" >/dev/null
}

command -v g++ >/dev/null || { echo "setup: installing g++ (the native addon is C++17)"; apt_install g++ make; }

if [ -n "${LIBTORCH:-}" ]; then
  echo "setup: using LIBTORCH=$LIBTORCH"
elif command -v "${PYTHON:-python3}" >/dev/null && py_has_torch "${PYTHON:-python3}"; then
  echo "setup: found pip torch $("${PYTHON:-python3}" -c 'import torch; print(torch.__version__)')"
elif [ -x "$venv/bin/python" ] && py_has_torch "$venv/bin/python"; then
  echo "setup: found torch in $venv"
else
  installed=no
  if command -v python3 >/dev/null; then
    echo "setup: installing PyTorch (pip) for its libtorch ..."
    if python3 -m pip install --quiet torch 2>/tmp/medlora-pip.log && py_has_torch python3; then
      installed=yes
    else
      # Debian's python refuses system-wide pip installs (externally managed): use a private virtual environment
      echo "setup: pip into python3 failed ($(tail -n 1 /tmp/medlora-pip.log)); trying a virtual environment $venv"
      if ! python3 -m venv "$venv" >/dev/null 2>&1; then apt_install python3-venv python3-pip || true; python3 -m venv "$venv" >/dev/null 2>&1 || true; fi
      if [ -x "$venv/bin/pip" ] && "$venv/bin/pip" install --quiet torch && py_has_torch "$venv/bin/python"; then installed=yes; fi
    fi
  fi
  if [ "$installed" = yes ]; then
    echo "setup: pip torch installed"
  elif have_system_torch; then
    echo "setup: pip torch unavailable; using the system libtorch"
  else
    echo "setup: pip torch unavailable; installing Debian libtorch-dev 1.13 + OpenBLAS (the default reference BLAS is ~60x slower)"
    apt_install libtorch-dev libopenblas0-pthread
  fi
fi

echo "setup: npm ci (npm packages, native addon, TypeScript) ..."
npm ci --no-audit --no-fund
echo "setup: done. Try: node bin/medlora.js doctor"
