#!/usr/bin/env bash
# The action's unit tests on the oldest and newest Python it claims (3.10 and 3.13),
# as the GitHub matrix in .github/workflows/ci.yml runs them, so that a break shows
# before it lands. Each interpreter gets a small venv under .venv/ (only what those
# tests import); one that is not on this machine is skipped, with a message.
set -euo pipefail
cd "$(dirname "$0")/.."
pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
status=0
for version in 3.10 3.13; do
  python="$(ls -d "$pyenv_root"/versions/"$version".*/bin/python 2>/dev/null | tail -n 1 || true)"
  if [ -z "$python" ]; then
    python="$(command -v "python$version" || true)"
  fi
  if [ -z "$python" ] || ! "$python" -c "" 2>/dev/null; then  # a pyenv shim may not run
    echo "action tests on Python $version: SKIPPED (no python$version here, nor in $pyenv_root)"
    continue
  fi
  venv=".venv/py$version"
  if [ ! -f "$venv/.installed" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet pytest hypothesis vermin pyjwt cryptography botocore
    touch "$venv/.installed"
  fi
  echo "action tests on $("$venv/bin/python" --version):"
  if ! PYTHONPATH=src "$venv/bin/python" -m pytest tests/unit/action -q -p no:cacheprovider; then
    status=1
  fi
done
exit "$status"
