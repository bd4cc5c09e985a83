#!/bin/sh
# What a running cell costs the host beyond its service (goal 4 of issue 18):
# converges N cells (default 100), each supervising one busybox service, then
# counts the processes each cell adds (its init, its supervisor, the service)
# and their proportional memory (Pss of /proc/PID/smaps_rollup), and prints
# the per-cell figures beside the goal (at most 1 process and 300 KB besides
# the service). Everything is stopped and removed at the end.
#
#   sudo bench/cell-cost.sh [N]      (CELLS_BIN=path/to/cells, default target/release/cells)
#
# The services are supervised in the cells' inits, the default on Linux;
# CELL_SUPERVISOR=process in the environment gives each a supervisor process
# (cellmgr.conf(5)).
set -eu
N=${1:-100}
BIN=${CELLS_BIN:-$(dirname "$0")/../target/release/cells}
[ -x "$BIN" ] || { echo "build first: cargo build --release (or set CELLS_BIN)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench/cell-cost.sh: needs root (kernel cells, mounts)" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
. "$(dirname "$0")/world.sh"
bench_world cell-cost "$BIN"
PLACEMENT=${CELL_SUPERVISOR:-init}
[ -z "${CELL_SUPERVISOR:-}" ] || echo "CELL_SUPERVISOR=$CELL_SUPERVISOR" >>"$CELLMGR_CONF"

i=0
while [ "$i" -lt "$N" ]; do
	printf 'CELL_AUTOSTART=YES\nCELL_CREATE_PROFILE=high\nCELL_SUPERVISE_CMD="/bin/busybox sleep 1000000"\n' \
	    >"$W/etc/$(printf 'k%03d' "$i").cell"
	i=$((i + 1))
done
t0=$(date +%s.%N)
"$BIN" mgr apply --all --silent >"$W/apply.out" 2>&1 || { cat "$W/apply.out" >&2; exit 1; }
t1=$(date +%s.%N)
LOAD=$(cut -d" " -f1-3 /proc/loadavg)

# The cells' processes are those in the cgroups of this run directory
# (cells/<first 6 bytes of sha256(run dir)>/<id>); the supervisors those
# started with this world's configuration.
python3 - "$W" "$N" <<'PY'
import hashlib, os, sys
w, n = sys.argv[1], int(sys.argv[2])
key = hashlib.sha256((w + "/run").encode()).hexdigest()[:12]

def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""

def pss_kb(pid):
    for line in read(f"/proc/{pid}/smaps_rollup").decode().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0

inits, services, supervisors = [], [], []
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    cg = next((l[3:] for l in read(f"/proc/{p}/cgroup").decode().splitlines() if l.startswith("0::")), "")
    if f"/cells/{key}/" in cg:
        (inits if read(f"/proc/{p}/comm").strip() == b"cell-init" else services).append(p)
    elif f"CELLMGR_CONF={w}/cellmgr.conf".encode() in read(f"/proc/{p}/environ").split(b"\0") \
            and b"supervise" in read(f"/proc/{p}/cmdline"):
        supervisors.append(p)

kb = lambda ps: sum(pss_kb(p) for p in ps)

def private_dirty(pid):
    """Private dirty KB of one process by where it lies: the binary's
    relocated data (RELRO, written once at start by the dynamic loader), its
    other writable data, heap, stack, shared libraries, other anonymous maps."""
    kinds, kind = {}, None
    exe = os.path.realpath(f"/proc/{pid}/exe")
    for line in read(f"/proc/{pid}/smaps").decode().splitlines():
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):
            name = fields[5] if len(fields) > 5 else ""
            perms = fields[1]
            if name == exe:
                kind = "binary data" if "w" in perms else "binary relocated (RELRO)"
            elif name in ("[heap]", "[stack]"):
                kind = name.strip("[]")
            elif name.startswith("/"):
                kind = "libraries"
            else:
                kind = "other anonymous"
        elif fields[0] == "Private_Dirty:":
            kinds[kind] = kinds.get(kind, 0) + int(fields[1])
    return kinds

def breakdown(label, ps):
    if not ps:
        return
    total = {}
    for p in ps:
        for k, v in private_dirty(p).items():
            total[k] = total.get(k, 0) + v
    parts = ", ".join(f"{k} {v / len(ps):.0f}" for k, v in sorted(total.items(), key=lambda kv: -kv[1]) if v)
    print(f"  private dirty KB of one {label}: {parts}")
extra = len(inits) + len(supervisors)
print(f"running cells: {n}; inits {len(inits)}, supervisors {len(supervisors)}, services {len(services)}")
print(f"processes per cell besides the service   {extra / n:6.2f}   (goal <= 1)")
print(f"Pss per cell besides the service         {kb(inits + supervisors) / n:6.0f} KB  (goal <= 300 KB)")
print(f"  of which the init                      {kb(inits) / n:6.0f} KB")
print(f"  of which the supervisor                {kb(supervisors) / n:6.0f} KB")
print(f"Pss of the service (busybox sleep)       {kb(services) / n:6.0f} KB")
breakdown("init", inits)
breakdown("supervisor", supervisors)
PY
echo "services supervised by: $PLACEMENT (CELL_SUPERVISOR)"
echo "converge of $N cells: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f s", b - a }'); load after: $LOAD; cores: $(nproc)"
