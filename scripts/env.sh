# Sourced by the other scripts: create or reuse .venv and install the pinned dependencies when
# requirements.lock or pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MANGAASSIST_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "creating virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.mangaassist-installed"
want="$(cat "$ROOT/requirements.lock" "$ROOT/pyproject.toml" "$ROOT/reference/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "installing pinned dependencies (requirements.lock) into $VENV (log: $VENV/install.log)"
    if ! { "$VENV/bin/python" -m pip install --no-compile -r "$ROOT/requirements.lock" \
           && "$VENV/bin/python" -m pip install --no-compile --no-deps -e "$ROOT" -e "$ROOT/reference"; } > "$VENV/install.log" 2>&1; then
        tail -n 30 "$VENV/install.log"
        echo "installing the dependencies failed; the whole log is $VENV/install.log" >&2
        exit 1
    fi
    # Bytecode for every installed file, on every core: pip compiles one file at a time (about 30 s of a 50 s
    # install on 2 cores; this takes 17). Like pip, it goes past files this Python cannot compile (torch
    # ships Python-3.12-only test helpers), so its exit status is not the install's.
    "$VENV/bin/python" -m compileall -q -j 0 "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
        >> "$VENV/install.log" 2>&1 || true
    echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
