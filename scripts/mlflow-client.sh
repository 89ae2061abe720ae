#!/usr/bin/env bash
# Installs the real mlflow client (mlflow-skinny from PyPI, pinned) into .build/mlflow-venv for the
# suite's MLflowClientTests, unless it is there already. `make test` calls it; with CI=1 a failed
# install fails (the test would then fail too), otherwise the test is skipped saying how to install.
#   scripts/mlflow-client.sh          # prints the venv's python on success
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=2.19.0
VENV=.build/mlflow-venv
if "$VENV/bin/python" -c "import mlflow, sys; sys.exit(mlflow.__version__ != '$VERSION')" 2> /dev/null; then
    echo "$VENV/bin/python"
    exit 0
fi
# A venv when python3 has one (Debian's needs python3-venv); else the packages in a folder of their
# own and a small python wrapper that puts them on the path: the test calls $VENV/bin/python either way.
install_in_folder() {
    rm -rf "$VENV" && mkdir -p "$VENV/bin" &&
        PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check --target "$VENV/site" \
            "mlflow-skinny==$VERSION" &&
        printf '#!/bin/sh\nPYTHONPATH="%s${PYTHONPATH:+:$PYTHONPATH}" exec python3 "$@"\n' "$PWD/$VENV/site" > "$VENV/bin/python" &&
        chmod +x "$VENV/bin/python"
}
if ! { { python3 -m venv "$VENV" && "$VENV/bin/pip" install --quiet --disable-pip-version-check "mlflow-skinny==$VERSION"; } ||
    install_in_folder; }; then
    echo "mlflow-client.sh: could not install mlflow-skinny==$VERSION into $VENV" >&2
    [ "${CI:-}" = "1" ] && exit 1
    exit 0
fi
echo "$VENV/bin/python"
