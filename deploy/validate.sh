#!/usr/bin/env bash
# Validates what we ship for deployment, offline:
#   * deploy/kubernetes: rendered with kustomize (kubectl's built-in one), validated against the
#     Kubernetes schemas and checked for what schemas cannot see (deploy/validate.py);
#   * docker/Dockerfile: linted with hadolint (findings at any level fail; an inline
#     `# hadolint ignore=DLxxxx` needs a comment saying why).
# The Python tools are installed once into a virtual environment (default target/deploy-venv,
# or $PHONE_AGENT_DEPLOY_VENV) from deploy/requirements.txt, and reinstalled when that changes.
# Needs python3 (3.11+) and kubectl or kustomize. CI runs this from .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${PHONE_AGENT_DEPLOY_VENV:-target/deploy-venv}"
if [[ ! -x "$venv/bin/python" ]] || ! cmp -s deploy/requirements.txt "$venv/requirements.txt"; then
    echo "installing deploy/requirements.txt into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        -r deploy/requirements.txt
    cp deploy/requirements.txt "$venv/requirements.txt"
fi

echo "-- kubernetes manifests"
"$venv/bin/python" deploy/validate.py

echo "-- hadolint docker/Dockerfile"
"$venv/bin/hadolint" --version
"$venv/bin/hadolint" --no-color --failure-threshold info docker/Dockerfile
echo "docker/Dockerfile: no findings"
