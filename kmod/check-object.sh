#!/bin/sh
# Checks a secmodel_cell.kmod object before it meets the NetBSD kernel
# loader. Usage: check-object.sh OBJECT. Needs readelf and objdump.
#
#  1. relocation types only from the amd64 kobj loader's accepted set;
#  2. no SSE/AVX register in the code (the kernel does not save them);
#  3. link_set_modules is exactly 8 bytes: one R_X86_64_64 to the modinfo;
#  4. the modinfo is 32 bytes;
#  5. undefined symbols only from kernel-exports.txt;
#  6. the only defined global is the modinfo, and no defined global is a
#     kernel symbol (the loader refuses a redefinition).
set -eu

obj=${1:?usage: check-object.sh OBJECT}
here=$(dirname "$0")
exports="$here/kernel-exports.txt"
fail=0
bad() { echo "FAIL: $*"; fail=1; }
ok() { echo "ok:   $*"; }

[ -f "$obj" ] || { echo "FAIL: $obj does not exist (run make kmod)"; exit 1; }

accepted='R_X86_64_NONE R_X86_64_64 R_X86_64_PC32 R_X86_64_32 R_X86_64_32S R_X86_64_GLOB_DAT R_X86_64_JUMP_SLOT R_X86_64_RELATIVE'
types=$(readelf -rW "$obj" | awk '$3 ~ /^R_X86_64_/ {print $3}' | sort -u)
for t in $types; do
    case " $accepted " in
    *" $t "*) ;;
    *) bad "relocation type $t is not accepted by the kernel loader" ;;
    esac
done
[ "$fail" -eq 0 ] && ok "relocation types: $(echo $types)"

simd=$(objdump -d "$obj" | grep -cE '%[xyz]mm[0-9]' || true)
if [ "$simd" -ne 0 ]; then bad "$simd instructions use SSE/AVX registers"; else ok "no SSE/AVX registers"; fi

size=$(readelf -SW "$obj" | awk '{for (i = 1; i <= NF; i++) if ($i == "link_set_modules") print $(i + 4)}')
if [ "$size" = "000008" ]; then ok "link_set_modules is 8 bytes"; else bad "link_set_modules size is '${size:-missing}', not 8"; fi
rel=$(readelf -rW "$obj" | awk '/Relocation section .\.rela?link_set_modules/ {on = 1; next} /^Relocation section/ {on = 0} on && /R_X86_64/ {print $3, $5}')
if [ "$rel" = "R_X86_64_64 secmodel_cell_modinfo" ]; then
    ok "link_set_modules points at secmodel_cell_modinfo"
else
    bad "link_set_modules relocation is '$rel'"
fi

misize=$(readelf -sW "$obj" | awk '$8 == "secmodel_cell_modinfo" {print $3}')
if [ "$misize" = "32" ]; then ok "modinfo is 32 bytes"; else bad "modinfo size '${misize:-missing}'"; fi

allowed=$(grep -v '^#' "$exports" | sort -u)
undef=$(readelf -sW "$obj" | awk '$7 == "UND" && $8 != "" {print $8}' | sort -u)
extra=$(printf '%s\n' "$undef" | comm -23 - "$(printf '%s\n' "$allowed" > "${TMPDIR:-/tmp}/cell-exports.$$"; echo "${TMPDIR:-/tmp}/cell-exports.$$")")
rm -f "${TMPDIR:-/tmp}/cell-exports.$$"
if [ -n "$extra" ]; then bad "undefined symbols not in kernel-exports.txt: $(echo $extra)"; else ok "$(echo "$undef" | wc -l) undefined symbols, all kernel exports"; fi

globals=$(readelf -sW "$obj" | awk '$5 == "GLOBAL" && $7 != "UND" {print $8}' | sort -u)
if [ "$globals" = "secmodel_cell_modinfo" ]; then ok "only global: secmodel_cell_modinfo"; else bad "defined globals: $(echo $globals)"; fi
for g in $globals; do
    if printf '%s\n' "$allowed" | grep -qx "$g"; then bad "defines kernel symbol $g"; fi
done

if [ "$fail" -ne 0 ]; then echo "check-object: $obj FAILED"; exit 1; fi
echo "check-object: $obj passed"
