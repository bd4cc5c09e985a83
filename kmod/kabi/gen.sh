#!/bin/sh
# Generates a secmodel_cell kernel ABI table (the format of kmod/kabi/*.tab)
# from NetBSD headers, by compiling kabi/probe*.c to assembly and reading
# the `probe_<name>` values. Each row names the header and the revision
# ($NetBSD$ id) it was computed from.
#
#   gen.sh [-k SYSSRC] INCLUDE_DIR CC [CC ARGS...] > table
#
# INCLUDE_DIR  the headers CC compiles against (/usr/include on NetBSD);
#              read for the $NetBSD$ ids and struct modinfo.
# CC ...       the C compiler command and its arguments, none with spaces
#              (cc on NetBSD; a zig cc with
#              -target x86_64-netbsd elsewhere).
# -k SYSSRC    a kernel source tree (the release's syssrc set, usually
#              /usr/src/sys) for <sys/kauth.h>, which NetBSD does not
#              install; without it no kauth rows are generated. Its
#              sys/param.h must name the same release as INCLUDE_DIR's.
#
# POSIX sh and awk only: it runs on a stock NetBSD.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
syssrc=
if [ "${1:-}" = -k ]; then
	syssrc=$2
	shift 2
fi
[ $# -ge 2 ] || { echo "usage: gen.sh [-k SYSSRC] INCLUDE_DIR CC [ARGS...]" >&2; exit 2; }
inc=$1
shift

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# The first $NetBSD$ id of a header: "sys/proc.h 1.370.4.2 2023/08/09".
ident() {
	awk -v f="$2" '
		match($0, /\$NetBSD: [^ ]+,v [0-9.]+ [0-9\/]+/) {
			split(substr($0, RSTART, RLENGTH), w, " ")
			print f " " w[3] " " w[4]; found = 1; exit
		}
		END { if (!found) print f " (no $NetBSD$ id)" }' "$1/$2"
}

# __NetBSD_Version__ as sys/param.h defines it ("" when the compiler does).
param_version() {
	awk '$1 == "#define" && $2 == "__NetBSD_Version__" { print $3; exit }' "$1/sys/param.h"
}

if [ ! -f "$inc/sys/module.h" ]; then
	echo "gen.sh: $inc/sys/module.h not found: INCLUDE_DIR must hold the NetBSD headers" >&2
	exit 1
fi
# struct modinfo is declared only under _KERNEL: copy that declaration.
awk '/typedef struct modinfo \{/ { on = 1 } on { print } on && /\} const modinfo_t;/ { exit }' \
	"$inc/sys/module.h" > "$tmp/modinfo_decl.h"
[ -s "$tmp/modinfo_decl.h" ] || { echo "gen.sh: no struct modinfo in $inc/sys/module.h" >&2; exit 1; }

probes="probe.c probe_module.c"
if [ -n "$syssrc" ]; then
	if [ ! -f "$syssrc/sys/kauth.h" ]; then
		echo "gen.sh: $syssrc/sys/kauth.h not found: -k must name a kernel source tree (sys/)" >&2
		exit 1
	fi
	v_inc=$(param_version "$inc")
	v_src=$(param_version "$syssrc")
	if [ -n "$v_inc" ] && [ "$v_inc" != "$v_src" ]; then
		echo "gen.sh: the kernel sources in $syssrc are release $v_src, the headers in $inc are $v_inc;" >&2
		echo "        install the syssrc set of the running release" >&2
		exit 1
	fi
	probes="$probes probe_kauth.c"
fi

# Compiles one probe; for the kauth probe, names an older kauth.h lacks are
# left out and reported as `absent` rows.
compile() {
	extra=
	[ "$1" = probe_kauth.c ] && extra="-idirafter $syssrc"
	cp "$here/$1" "$tmp/$1"
	for attempt in 1 2; do
		# shellcheck disable=SC2086
		if "$cc_cmd" $cc_args -D_KMEMUSER $extra -I"$tmp" -S -o "$tmp/$1.s" "$tmp/$1" 2> "$tmp/err"; then
			return 0
		fi
		[ "$1" = probe_kauth.c ] && [ $attempt = 1 ] || break
		missing=$(grep -o "undeclared identifier '[A-Z0-9_]*'\|'[A-Z0-9_]*' undeclared" "$tmp/err" |
			grep -o "[A-Z][A-Z0-9_]*" | sort -u)
		[ -n "$missing" ] || break
		for m in $missing; do
			grep -v "[(, ]$m)" "$tmp/$1" > "$tmp/$1.new" && mv "$tmp/$1.new" "$tmp/$1"
			echo "$m" | tr 'A-Z' 'a-z' >> "$tmp/absent"
		done
	done
	cat "$tmp/err" >&2
	echo "gen.sh: compiling $1 failed" >&2
	exit 1
}

cc_cmd=$1
shift
cc_args="$*"
: > "$tmp/absent"
for p in $probes; do
	compile "$p"
done

# Header of every row, by name.
header_of() {
	case $1 in
	netbsd_version) echo sys/param.h ;;
	proc_*|pk_marker|szomb) echo sys/proc.h ;;
	lwp_*) echo sys/lwp.h ;;
	cwdinfo_*) echo sys/filedesc.h ;;
	rw_*) echo sys/rwlock.h ;;
	vmspace_*) echo "uvm/uvm_extern.h uvm/uvm_map.h" ;;
	vnode_*|vdir) echo sys/vnode.h ;;
	socket_*) echo sys/socketvar.h ;;
	so_*|af_*|pf_*) echo sys/socket.h ;;
	rlimit_*) echo sys/resource.h ;;
	sysctlnode_*|ctl_*|ctltype_*|ctlflag_*) echo sys/sysctl.h ;;
	callout_*) echo sys/callout.h ;;
	mutex_*) echo sys/mutex.h ;;
	km_*) echo sys/kmem.h ;;
	log_*) echo sys/syslog.h ;;
	modinfo_*|module_*|maxmodname) echo sys/module.h ;;
	kauth_*) echo sys/kauth.h ;;
	*) echo sys/errno.h ;;
	esac
}

cat "$tmp"/*.s | awk '
	/^probe_[a-z0-9_]+:/ { name = substr($1, 7, length($1) - 7); next }
	name != "" && $1 == ".quad" { print name, $2; name = ""; next }
	name != "" && $1 == ".zero" { print name, 0; name = ""; next }
' > "$tmp/values"

zigpatched=
grep -q "zig patch: __NetBSD_Version__" "$inc/sys/param.h" && zigpatched=1

sed 's/$/ absent/' "$tmp/absent" >> "$tmp/values"
while read -r name value; do
	src=
	for h in $(header_of "$name"); do
		dir=$inc
		[ "$h" = sys/kauth.h ] && dir=$syssrc
		src="$src${src:+; }$(ident "$dir" "$h")"
	done
	if [ "$name" = netbsd_version ] && [ -n "$zigpatched" ]; then
		src="the compiler's target triple (zig patches it out of $src)"
	fi
	printf '%s\t%s\t%s\n' "$name" "$value" "$src"
done < "$tmp/values"
