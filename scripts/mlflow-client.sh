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
if ! { python3 -m venv "$VENV" && "$VENV/bin/pip" install --quiet --disable-pip-version-check "mlflow-skinny==$VERSION"; }; then
    echo "mlflow-client.sh: could not install mlflow-skinny==$VERSION into $VENV" >&2
    [ "${CI:-}" = "1" ] && exit 1
    exit 0
fi
echo "$VENV/bin/python"
