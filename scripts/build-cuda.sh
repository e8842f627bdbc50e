#!/usr/bin/env bash
# Build `sweep` with candle's CUDA backend on a machine that has no GPU and no
# system CUDA toolkit (this one, and CI).
#
#   scripts/build-cuda.sh check   # what CI runs: nvcc compiles candle's kernels,
#                                 # rustc type-checks `--features cuda`; no link
#   scripts/build-cuda.sh build   # binaries, stripped and gzipped into .gpu/ to carry
#                                 # to a GPU machine (scripts/gpu-check.sh, docs/cuda.md)
#   eval "$(scripts/build-cuda.sh env)"  # the toolkit's environment, to run cargo by hand
#
# Why each piece (details in docs/cuda.md):
# - The toolkit comes from PyPI wheels (the only registry with CUDA here), pinned
#   to CUDA 13.0: the lent H100/H200 run driver 580 (CUDA 13.0), and candle loads
#   most of its kernels as PTX that the driver JIT-compiles; PTX from a newer nvcc
#   (13.1+ emits PTX ISA > 9.0) is refused by a 13.0 driver at run time
#   (CUDA_ERROR_UNSUPPORTED_PTX_VERSION). cudarc 0.19 also knows CUDA <= 13.4 only.
# - The wheels unpack into .cuda/ (git-ignored) as one CUDA_HOME: bin/nvcc,
#   nvvm/bin/cicc, include/ (+ include/cccl), lib/libcudart.so.13.
# - candle-core turns on cudarc's `dynamic-linking`, so the final link (mode
#   `build` only) wants libcuda, libcublas, libcublasLt, libcurand and libnvrtc.
#   We link against generated stub libraries carrying the real SONAMEs (as the
#   CUDA toolkit's own lib/stubs/libcuda.so does); at run time the loader finds
#   the real ones: the driver's libcuda.so.1 and PyTorch's nvidia/* wheels
#   (scripts/gpu-check.sh sets LD_LIBRARY_PATH).
#
# Environment:
#   CUDA_COMPUTE_CAP   target compute capability (default 90: H100/H200)
#   CUDA_WHEELS        folder with the wheels already downloaded (skips pip)
#   CUDA_BUILD_PROFILE dev (default; reuses a warm debug target dir) or release
#   CARGO_TARGET_DIR   as usual
set -euo pipefail

mode=${1:-check}
case "$mode" in
  check | build | env) ;;
  *)
    echo "usage: $0 [check|build|env]  (got '$mode')" >&2
    exit 2
    ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
cuda_dir="$root/.cuda"
wheels="${CUDA_WHEELS:-$cuda_dir/wheels}"
cuda_home="$cuda_dir/root/nvidia/cu13"

# CUDA 13.0 toolkit, the version the lent GPU machines' driver supports.
packages=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-cccl==13.0.85
)

# Strips the binaries, checks what they link, and gzips them into .gpu/ (the
# device tool carries at most 64 MiB; scripts/gpu-check.sh unpacks them there).
stage_binaries() { # stage_binaries SWEEP TESTS
  local stage="$root/.gpu" name bin
  rm -rf "$stage" && mkdir -p "$stage"
  for pair in "sweep:$1" "cwpo-tests:$2"; do
    name=${pair%%:*} bin=${pair#*:}
    strip -o "$stage/$name" "$bin"
    check_sonames "$stage/$name"
    gzip -9 "$stage/$name"
  done
  echo "build-cuda: staged in .gpu/ (compute capability $CUDA_COMPUTE_CAP):" >&2
  ls -l "$stage" >&2
  du -sh "$stage" >&2
}

# The CUDA libraries a binary names (NEEDED) must be exactly these: the
# driver's libcuda.so.1 and the CUDA 13 libraries PyTorch's wheels ship.
expected_sonames="libcublas.so.13 libcublasLt.so.13 libcuda.so.1 libcudart.so.13 libcurand.so.10 libnvrtc.so.13"
check_sonames() { # check_sonames BINARY
  local got
  got=$(readelf -d "$1" | sed -nE 's/.*\(NEEDED\).*\[(.*)\]/\1/p' |
    grep -E 'cuda|cublas|curand|nvrtc' | sort | tr '\n' ' ' | sed 's/ $//')
  if [ "$got" != "$expected_sonames" ]; then
    echo "build-cuda: $1 needs [$got], expected [$expected_sonames]" >&2
    exit 1
  fi
  echo "build-cuda: $(basename "$1") needs $(readelf -d "$1" | grep -c NEEDED) libraries; CUDA ones: $got" >&2
}

fetch_wheels() {
  mkdir -p "$wheels"
  local missing=()
  for p in "${packages[@]}"; do
    local name=${p%%==*} version=${p##*==}
    compgen -G "$wheels/${name//-/_}-${version}-*.whl" >/dev/null || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  echo "build-cuda: downloading ${missing[*]} into $wheels" >&2
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 \
    --python-version 3.12 --implementation py -d "$wheels" "${missing[@]}"
}

unpack_toolkit() {
  local stamp="$cuda_dir/root/.unpacked" want="${packages[*]}"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
  rm -rf "$cuda_dir/root"
  mkdir -p "$cuda_dir/root"
  for p in "${packages[@]}"; do
    local name=${p%%==*} version=${p##*==}
    unzip -qo "$wheels/${name//-/_}-${version}"-*.whl 'nvidia/*' -d "$cuda_dir/root"
  done
  ln -sf libcudart.so.13 "$cuda_home/lib/libcudart.so"
  echo "$want" >"$stamp"
}

# Stub shared libraries for the link of mode `build`: every entry point that
# cudarc declares for a library becomes an empty function in a .so with the real
# library's SONAME, so the binary records the right NEEDED entries.
make_link_stubs() {
  local cudarc
  cudarc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* | sort -V | tail -n 1)
  mkdir -p "$cuda_home/lib/stubs"
  # lib file          SONAME             cudarc bindings      symbol prefix
  while read -r lib soname bindings prefix; do
    local c="$cuda_dir/stub-$lib.c"
    grep -ohE "fn ${prefix}[A-Za-z0-9_]*\(" "$cudarc/src/$bindings" |
      sed -E 's/fn ([A-Za-z0-9_]+)\(/void \1(void) {}/' | sort -u >"$c"
    gcc -shared -fPIC -w -Wl,-soname,"$soname" -o "$cuda_home/lib/stubs/$lib" "$c"
  done <<'STUBS'
libcuda.so     libcuda.so.1       driver/sys/mod.rs    cu
libcublas.so   libcublas.so.13    cublas/sys/mod.rs    cublas
libcublasLt.so libcublasLt.so.13  cublaslt/sys/mod.rs  cublasLt
libcurand.so   libcurand.so.10    curand/sys/mod.rs    curand
libnvrtc.so    libnvrtc.so.13     nvrtc/sys/mod.rs     nvrtc
STUBS
}

fetch_wheels
unpack_toolkit
[ "$mode" = check ] || make_link_stubs

export CUDA_HOME="$cuda_home" CUDA_ROOT="$cuda_home" CUDA_PATH="$cuda_home"
export NVCC="$cuda_home/bin/nvcc" PATH="$cuda_home/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
if [ "$mode" = env ]; then
  # For building pieces by hand: eval "$(scripts/build-cuda.sh env)"
  for v in CUDA_HOME CUDA_ROOT CUDA_PATH NVCC PATH CUDA_COMPUTE_CAP; do
    printf 'export %s=%q\n' "$v" "${!v}"
  done
  exit 0
fi
"$NVCC" --version | tail -n 2 >&2

cd "$root"
start=$(date +%s)
if [ "$mode" = check ]; then
  cargo check --release --features cuda --all-targets
else
  # Profile `dev` by default: Cargo.toml builds every dependency at opt-level 3
  # in dev too, and CARGO_PROFILE_DEV_OPT_LEVEL=3 lifts cwpo itself, so the
  # binary computes at release speed while a warm CPU debug target dir is
  # reused: only what the feature changes (candle-kernels' nvcc run, cudarc,
  # candle-core/-nn/-transformers, cwpo) compiles. CUDA_BUILD_PROFILE=release
  # builds all ~400 crates afresh (an hour or more on 2 cores).
  profile=${CUDA_BUILD_PROFILE:-dev}
  case "$profile" in
    dev) export CARGO_PROFILE_DEV_OPT_LEVEL=3 && flags=() && out=debug ;;
    release) flags=(--release) && out=release ;;
    *) echo "CUDA_BUILD_PROFILE must be dev or release, got '$profile'" >&2 && exit 2 ;;
  esac
  # The binary and the library's test binary (its ignored GPU parity tests run
  # on the GPU machine).
  cargo build "${flags[@]}" --features cuda --bin sweep
  tests=$(cargo test "${flags[@]}" --features cuda --lib --no-run --message-format=json |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["lib"]:
        print(m["executable"])')
  echo "build-cuda: cargo build took $(($(date +%s) - start)) s" >&2
  stage_binaries "${CARGO_TARGET_DIR:-$root/target}/$out/sweep" "$tests"
fi
echo "build-cuda: cargo $mode --features cuda took $(($(date +%s) - start)) s" >&2
