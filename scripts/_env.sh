# Shared by scripts/run and scripts/test: find Python 3.11+, create .venv if absent, install the project.
# Usage: source scripts/_env.sh; ensure_venv ""|"test"

find_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "error: Tether needs Python 3.11 or newer on PATH" >&2
  return 1
}

ensure_venv() {
  local extras="$1" spec="." stamp
  [ -n "$extras" ] && spec=".[$extras]"
  if [ ! -x .venv/bin/python ]; then
    echo "creating .venv"
    "$(find_python)" -m venv .venv
  fi
  # Reinstall only when the project's dependencies changed since the last install.
  local hash
  hash="$(sha256sum pyproject.toml | cut -c1-16)"
  stamp=".venv/.tether-install-$hash-${extras:-base}"
  # An install with the test extras holds everything the base needs: scripts/run after scripts/test installs nothing.
  if [ -z "$extras" ] && [ -f ".venv/.tether-install-$hash-test" ]; then
    return 0
  fi
  if [ ! -f "$stamp" ]; then
    echo "installing tether ($spec) into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e "$spec"
    rm -f .venv/.tether-install-*
    touch "$stamp"
  fi
}
