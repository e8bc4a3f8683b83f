#!/usr/bin/env bash
# Installs the third-party Argo CD repository linters the tests run on every
# generated tree (tests/lint.rs): argocd-source-lint and argocheck, from PyPI,
# into a virtualenv under target/tools/. Idempotent: a venv that already has
# the pinned versions is left alone. Fails loudly when they cannot be
# installed, so the tests never skip them.
set -euo pipefail
cd "$(dirname "$0")/.."

SOURCE_LINT=argocd-source-lint==1.2.2
ARGOCHECK=argocheck==0.5.0
VENV=target/tools/venv

have() {
    [ -x "$VENV/bin/argocd-source-lint" ] && [ -x "$VENV/bin/argocheck" ] &&
        "$VENV/bin/pip" freeze 2>/dev/null | grep -qx "${SOURCE_LINT}" &&
        "$VENV/bin/pip" freeze 2>/dev/null | grep -qx "${ARGOCHECK}"
}

if ! have; then
    command -v python3 >/dev/null || { echo "error: python3 is needed to install the Argo CD linters" >&2; exit 1; }
    echo "installing ${SOURCE_LINT} and ${ARGOCHECK} into ${VENV}" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "$SOURCE_LINT" "$ARGOCHECK" || {
        echo "error: could not install ${SOURCE_LINT} and ${ARGOCHECK} from PyPI" >&2
        echo "  help: the lint tests (tests/lint.rs) need them; check the network and pip" >&2
        exit 1
    }
fi
have || { echo "error: ${VENV} does not have ${SOURCE_LINT} and ${ARGOCHECK} after installing" >&2; exit 1; }
