#!/usr/bin/env bash
# Builds .venv-finn: FINN v0.10.1 (39f0c9a) and the qonnx commit it pins, from the source tarballs
# in ../shared/vendor (or $FINNSPLIT_VENDOR), with FINN's pinned requirements and the import-only
# stand-ins its vendor README names. Idempotent: a finished environment is checked and kept.
# docs/finn.md#finn-without-its-docker says why each step is here.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# The vendored sources: $FINNSPLIT_VENDOR, else shared/vendor beside this checkout or beside any of
# its parent folders, else the workplace's /work/shared/vendor (a CI clone may live elsewhere).
vendor=${FINNSPLIT_VENDOR:-}
if [ -z "$vendor" ]; then
  dir=$root
  while [ "$dir" != "/" ]; do
    if [ -f "$dir/../shared/vendor/SHA256SUMS" ]; then vendor=$(cd "$dir/../shared/vendor" && pwd); break; fi
    dir=$(dirname "$dir")
  done
  [ -n "$vendor" ] || vendor=/work/shared/vendor
fi
venv=$root/.venv-finn
src=$venv/src
stamp=$venv/.finnsplit-ready

finn_tar=finn-39f0c9a.tar.gz
qonnx_tar=qonnx-fd61cfe.tar.gz

check() {
  FINN_BUILD_DIR=$venv/build FINN_ROOT=$src/finn "$venv/bin/python" - <<'EOF'
import finn.builder.build_dataflow  # noqa: F401  the builder itself, not PyPI's placeholder
import finn.custom_op.fpgadataflow.matrixvectoractivation  # noqa: F401
import brevitas, qonnx  # noqa: F401, E401
EOF
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(cat "$vendor/SHA256SUMS" 2>/dev/null)" ] && check 2>/dev/null; then
  echo "setup-finn: $venv is ready"
  exit 0
fi

for f in $finn_tar $qonnx_tar SHA256SUMS; do
  [ -f "$vendor/$f" ] || { echo "setup-finn: $vendor/$f not found (set FINNSPLIT_VENDOR)" >&2; exit 1; }
done
(cd "$vendor" && sha256sum --quiet -c SHA256SUMS) || { echo "setup-finn: checksums in $vendor do not match" >&2; exit 1; }

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  rm -rf "$venv" && python3 -m venv "$venv"  # none yet, or its creation was interrupted
fi
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
rm -rf "$src" && mkdir -p "$src/finn" "$src/qonnx" "$venv/build"
tar xzf "$vendor/$finn_tar" -C "$src/finn" --strip-components=1
tar xzf "$vendor/$qonnx_tar" -C "$src/qonnx" --strip-components=1

# torch first: the local CPU wheel (any other resolve pulls a CUDA build of several GB).
"${pip[@]}" "torch==2.13.0"
"${pip[@]}" -r "$src/finn/requirements.txt" pytest==6.2.5 pillow brevitas==0.10.0 "setuptools<70"
# setuptools_scm reads the version from git, and a tarball has none; --no-deps keeps FINN's
# protobuf pin (qonnx's setup.cfg asks for 3.20.3).
SETUPTOOLS_SCM_PRETEND_VERSION=0.5.0 "${pip[@]}" --no-deps -e "$src/qonnx"
SETUPTOOLS_SCM_PRETEND_VERSION=0.10.1 "${pip[@]}" --no-deps -e "$src/finn"

# Import-only stand-ins: FINN's modules import these at load time; an estimate-only flow never
# calls them. Each raises if used, so nothing silently pretends to simulate.
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$site/pyverilator/util" "$site/torchvision/transforms"
cat >"$site/pyverilator/__init__.py" <<'EOF'
"""finnsplit stand-in: pyverilator is not installable here; RTL simulation needs Verilator builds."""


class PyVerilator:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("pyverilator stand-in (finnsplit .venv-finn): RTL simulation is not available here")

    @classmethod
    def build(cls, *args, **kwargs):
        raise RuntimeError("pyverilator stand-in (finnsplit .venv-finn): RTL simulation is not available here")
EOF
cat >"$site/pyverilator/util/__init__.py" <<'EOF'
EOF
cat >"$site/pyverilator/util/axi_utils.py" <<'EOF'
"""finnsplit stand-in: names FINN imports; each raises when called."""


def _unavailable(*args, **kwargs):
    raise RuntimeError("pyverilator stand-in (finnsplit .venv-finn): RTL simulation is not available here")


_read_signal = reset_rtlsim = rtlsim_multi_io = toggle_clk = _unavailable
EOF
cat >"$site/torchvision/__init__.py" <<'EOF'
"""finnsplit stand-in: PyPI's torchvision does not load beside the local torch wheel."""
EOF
cat >"$site/torchvision/transforms/__init__.py" <<'EOF'
EOF
cat >"$site/torchvision/transforms/functional.py" <<'EOF'
"""finnsplit stand-in: names finn.util.test imports; each raises when called."""


def _unavailable(*args, **kwargs):
    raise RuntimeError("torchvision stand-in (finnsplit .venv-finn): not available here")


resize = center_crop = _unavailable
EOF

# FINN's setup.py takes no version (pip records 0.0.0): say which FINN this is where finnsplit looks.
echo "0.10.1+39f0c9a" >"$src/finn/.finnsplit-version"
check
cat "$vendor/SHA256SUMS" >"$stamp"
echo "setup-finn: done ($venv; FINN_ROOT=$src/finn)"
