#!/bin/sh
# Cargo runner: boots an ELF in QEMU and decodes its defmt stream (semihosting stdout).
#   sh qemu-run.sh MACHINE ELF
# Needs `qemu-system-arm` (Debian: apt-get install qemu-system-arm) and
# `defmt-print` (cargo install defmt-print --locked). The QEMU exit code is the firmware's
# semihosting exit code: 0 on success, 1 when the model region was refused or a step failed.
set -eu
machine="$1"
elf="$2"
command -v qemu-system-arm >/dev/null || { echo "qemu-system-arm not found: apt-get install qemu-system-arm" >&2; exit 127; }
command -v defmt-print >/dev/null || { echo "defmt-print not found: cargo install defmt-print --locked" >&2; exit 127; }
# `timeout`: if the pipe closes early QEMU can spin forever.
status=0
{ timeout 60 qemu-system-arm -machine "$machine" -nographic \
    -semihosting-config enable=on,target=native -kernel "$elf" </dev/null || status=$?; \
  echo "$status" >"${TMPDIR:-/tmp}/qemu-run.$$"; } | defmt-print -e "$elf"
status=$(cat "${TMPDIR:-/tmp}/qemu-run.$$"); rm -f "${TMPDIR:-/tmp}/qemu-run.$$"
exit "$status"
