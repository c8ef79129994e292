#!/usr/bin/env bash
# Installs everything finnsplit needs on a fresh Debian machine (idempotent): system packages,
# a virtualenv in .venv with pinned Python packages, and the C++ server build.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# clang + libclang-rt: the ASan/UBSan and libFuzzer build of cpp_server (tests/cpp_fixtures.py);
# chromium: the dashboard test drives it headless (tests/orchestrator/test_dashboard_ingress.py).
for pkg in mosquitto openssh-server g++-arm-linux-gnueabihf g++-aarch64-linux-gnu qemu-user-static cmake iproute2 clang libclang-rt-14-dev chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# a venv whose creation was interrupted (no pip) is made again
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  rm -rf .venv
  python3 -m venv .venv
fi
# torch first: the local CPU wheel; a later resolve that allows 2.13.0 then installs nothing more.
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[export,dev]"

if [ -f cpp_server/CMakeLists.txt ]; then
  cmake -S cpp_server -B cpp_server/build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build cpp_server/build -j 2 >/dev/null
  # the boards' servers, which `finnsplit board install` picks by uname -m: armhf (Zedboard, PYNQ-Z2)
  # and aarch64 (ZCU104, KV260)
  for arch in armhf aarch64; do
    if [ ! -f "cpp_server/build-$arch/CMakeCache.txt" ]; then
      cmake -S cpp_server -B "cpp_server/build-$arch" -DCMAKE_BUILD_TYPE=Release \
        "-DCMAKE_TOOLCHAIN_FILE=$PWD/cpp_server/cmake/$arch-toolchain.cmake" >/dev/null
    fi
    cmake --build "cpp_server/build-$arch" -j 2 --target finnsplit-server >/dev/null
  done
fi
echo "setup: done (.venv ready)"
