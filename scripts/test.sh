#!/usr/bin/env bash
# Runs every owl test on a Debian 12 machine, from nothing:
#   1. installs the Debian packages owl needs if any is missing (root);
#   2. builds Release and runs the CTest suite;
#   3. builds with AddressSanitizer + UBSan in a separate folder and runs the
#      suite again;
#   4. builds the libFuzzer targets with clang and runs each one for a bounded
#      time on its generated seed corpus, as CTest tests, so the last thing
#      printed is CTest's summary.
# Exits non-zero as soon as anything fails. Downloads nothing but Debian
# packages (and the openai package from npm's registry in e2e_serve).
# Environment: OWL_JOBS (parallel jobs, default 2),
# OWL_FUZZ_SECONDS (per fuzzer, default 30), OWL_TESTDATA (default
# ../shared/testdata beside the checkout).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
JOBS=${OWL_JOBS:-2}
FUZZ_SECONDS=${OWL_FUZZ_SECONDS:-30}
export OWL_TESTDATA=${OWL_TESTDATA:-$(cd "$ROOT/.." && pwd)/shared/testdata}

PACKAGES=(cmake make gcc pkg-config libjansson-dev libpcre2-dev libutf8proc-dev libssl-dev libmicrohttpd-dev libsqlite3-dev libcurl4-openssl-dev libreadline-dev
          libomp-dev clang libclang-rt-14-dev python3 python3-numpy python3-jinja2 python3-sentencepiece tmux)

# Node and npm for the test with OpenAI's own client (npm install openai at
# test time, from npm's registry); a node that is already there is used as is.
command -v node >/dev/null || PACKAGES+=(nodejs)
command -v npm >/dev/null || PACKAGES+=(npm)

step() { printf '\n==== %s\n' "$*"; }

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) != 0 ]]; then
        echo "test.sh: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
        exit 1
    fi
    step "installing ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
if [[ ! -d $OWL_TESTDATA ]]; then
    echo "test.sh: test data not found at $OWL_TESTDATA (set OWL_TESTDATA)" >&2
    exit 1
fi

step "Release build"
cmake -S . -B build/ci-release -DCMAKE_BUILD_TYPE=Release
cmake --build build/ci-release -j"$JOBS"
step "Release tests"
ctest --test-dir build/ci-release --output-on-failure -j"$JOBS"

step "sanitizer build (ASan + UBSan)"
cmake -S . -B build/ci-asan -DCMAKE_BUILD_TYPE=Release -DOWL_SANITIZE=ON
cmake --build build/ci-asan -j"$JOBS"
step "sanitizer tests"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir build/ci-asan --output-on-failure -j"$JOBS"

step "libFuzzer build (clang)"
CC=clang cmake -S . -B build/ci-fuzz -DCMAKE_BUILD_TYPE=Release -DOWL_FUZZ=ON -DOWL_FUZZ_SECONDS="$FUZZ_SECONDS"
# Only the fuzzers and their seed-corpus writers: the rest of the tree was
# tested above. fuzz/CMakeLists.txt gives each fuzz_NAME a CTest test
# fuzz_NAME_smoke that writes the seeds and fuzzes for OWL_FUZZ_SECONDS.
mapfile -t targets < <(cmake --build build/ci-fuzz --target help | sed -n 's/^\.\.\. \(\(fuzz\|seeds\)_[A-Za-z0-9_]*\).*/\1/p' | sort -u)
if ! printf '%s\n' "${targets[@]}" | grep -q '^fuzz_'; then
    echo "test.sh: fuzz/CMakeLists.txt defines no fuzz_* targets" >&2
    exit 1
fi
cmake --build build/ci-fuzz -j"$JOBS" --target "${targets[@]}"

step "fuzzing each target for ${FUZZ_SECONDS}s"
ctest --test-dir build/ci-fuzz -R '^fuzz_.*_smoke$' --output-on-failure -j"$JOBS"
