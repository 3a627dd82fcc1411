# Sourced by scripts/serve and scripts/test: make .venv with cairn and its Python packages.
# Idempotent and quick when nothing changed (a stamp records the pyproject it installed).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
EXTRAS="${CAIRN_BOOTSTRAP_EXTRAS:-}"

python_for_venv() {
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1; then
            echo "$candidate"
            return
        fi
    done
    echo "cairn needs Python 3.11 (python3.11 or python3 on PATH)" >&2
    exit 1
}

bootstrap_python() {
    if [ ! -x "$VENV/bin/python" ]; then
        echo "bootstrap: creating $VENV" >&2
        "$(python_for_venv)" -m venv "$VENV"
    fi
    local spec="$ROOT"
    [ -n "$EXTRAS" ] && spec="$ROOT[$EXTRAS]"
    local stamp="$VENV/.cairn-installed"
    local want
    want="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-64) $EXTRAS"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "bootstrap: installing cairn${EXTRAS:+ with [$EXTRAS]} into $VENV" >&2
        "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
        "$VENV/bin/python" -m pip install --quiet -e "$spec" >&2
        echo "$want" > "$stamp"
    fi
}

# Debian packages the tests drive (real clients and peers, never mocks): ``pkg:binary`` pairs,
# installed when the binary is missing; ``pkg:`` when a package is needed whatever else provides
# the binary (busybox-static: a dynamic busybox would not run in a chroot).
bootstrap_debian() {
    local missing=()
    local pkg bin
    for pair in "$@"; do
        pkg="${pair%%:*}"
        bin="${pair#*:}"
        if [ -z "$bin" ]; then  # "pkg:" = the package itself must be installed (dpkg says so)
            dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
        else
            command -v "$bin" >/dev/null 2>&1 || missing+=("$pkg")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}
