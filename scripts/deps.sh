#!/usr/bin/env bash
# Installs the system packages the tests need, when they are missing (Debian/Ubuntu, as root
# or through sudo). Idempotent: a machine that has them all runs no package command.
set -euo pipefail

# A C and C++ toolchain (with the sanitizer runtimes) links the cdylib and builds the C API
# tests; binutils gives nm and readelf, which check the library's exports; make and
# pkg-config install the library and build the C examples against the installed copy.
need=()
command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v nm >/dev/null 2>&1 || need+=(binutils)
command -v make >/dev/null 2>&1 || need+=(make)
command -v pkg-config >/dev/null 2>&1 || need+=(pkgconf)
# bindgen (ffi-tests) reads the header through libclang.
ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so' || need+=(libclang-dev)
# The MPI example runs under Debian's Open MPI.
{ command -v mpicc && command -v mpirun; } >/dev/null 2>&1 || need+=(openmpi-bin libopenmpi-dev)
# The PMIx bootstrap (cargo feature `pmix`) links libpmix, found with pkg-config.
pkg-config --exists pmix 2>/dev/null || need+=(libpmix-dev)
# Hosts as network namespaces (the tests between hosts, `demo --hosts`): iproute2.
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# The many-users test switches to a second uid with setpriv (util-linux); the terminal test
# runs commands under `script` (bsdutils).
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v script >/dev/null 2>&1 || need+=(bsdutils)
# `topo show --format dot` is checked by rendering it with graphviz.
command -v dot >/dev/null 2>&1 || need+=(graphviz)
[ "${#need[@]}" -eq 0 ] && exit 0

echo "installing: ${need[*]}" >&2
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y "${need[@]}"
