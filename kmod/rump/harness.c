/*
 * Exercises secmodel_cell against NetBSD's real kauth, sysctl, secmodel
 * and module code in a userspace rump kernel (the 2016 NetBSD tree, built
 * with buildrump.sh outside this repository). See run.sh and ../README.md.
 * The module is the Rust crate built with features kernel,rump2016; the
 * cell_create/cell_info offsets are those of src/abi.rs.
 */
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <rump/rump.h>
#include <rump/rump_syscalls.h>
#include <rump/rumpkern_if_pub.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern const struct modinfo secmodel_cell_modinfo;

static int failures, passes;
#define CHECK(what, cond) do { int ok_ = (cond); printf("%s %s\n", ok_ ? "ok  " : "FAIL", what); if (!ok_) failures++; else passes++; } while (0)

/* NetBSD sysctl name lookup with CTL_QUERY. */
static int mib_of(const char *dotted, int *mib, unsigned *n) {
	char buf[256]; strncpy(buf, dotted, sizeof buf - 1); buf[sizeof buf - 1] = 0;
	*n = 0;
	for (char *part = strtok(buf, "."); part; part = strtok(NULL, ".")) {
		unsigned char nodes[96 * 64]; size_t len = sizeof nodes;
		unsigned char q[96]; memset(q, 0, sizeof q);
		uint32_t ver = 0x01000000; memcpy(q, &ver, 4);
		mib[*n] = -2; /* CTL_QUERY */
		if (rump_sys___sysctl(mib, *n + 1, nodes, &len, q, sizeof q) == -1) return -1;
		int found = 0;
		for (size_t off = 0; off + 96 <= len; off += 96) {
			if (strcmp((char *)nodes + off + 8, part) == 0) {
				int32_t num; memcpy(&num, nodes + off + 4, 4);
				mib[(*n)++] = num; found = 1; break;
			}
		}
		if (!found) { errno = ENOENT; return -1; }
	}
	return 0;
}

static int sysctl_rw(const char *name, void *old, size_t *oldlen, const void *new, size_t newlen) {
	int mib[16]; unsigned n;
	if (mib_of(name, mib, &n) == -1) return errno;
	return rump_sys___sysctl(mib, n, old, oldlen, new, newlen) == -1 ? errno : 0;
}

#define CC_SIZE 432	/* struct cell_create, ABI 3 */
#define CI_SIZE 528	/* struct cell_info, ABI 3 */
#define AS_CEILING (1ULL << 30)

static void cell_create(unsigned char *cc, const char *name, const char *root, uint32_t profile, uint16_t port) {
	memset(cc, 0, CC_SIZE);
	uint32_t flags = 0x1 | 0x8 /* RLIMIT_AS */ | (port ? 0x2 : 0);
	uint64_t as = AS_CEILING;
	memcpy(cc + 0, &flags, 4); memcpy(cc + 8, &profile, 4); memcpy(cc + 88, &as, 8);
	if (port) { uint16_t one = 1; memcpy(cc + 12, &one, 2); memcpy(cc + 14, &port, 2); }
	strcpy((char *)cc + 104, name); strcpy((char *)cc + 168, root);
}

static int set_as(uint64_t max) {
	struct { uint64_t cur, max; } rl = { max, max };
	return rump_sys_setrlimit(10 /* RLIMIT_AS */, (void *)&rl) == -1 ? errno : 0;
}

static int do_bind_opt(uint16_t port, int reuseport) {
	int s = rump_sys_socket(2 /* AF_INET */, 2 /* SOCK_DGRAM */, 0);
	if (s == -1) return errno;
	int one = 1;
	if (reuseport && rump_sys_setsockopt(s, 0xffff /* SOL_SOCKET */, 0x200 /* SO_REUSEPORT */, &one, sizeof one) == -1) {
		rump_sys_close(s);
		return -errno;
	}
	unsigned char sa[16] = { 16, 2 };
	sa[2] = port >> 8; sa[3] = port & 0xff; sa[4] = 127; sa[7] = 1;
	int rv = rump_sys_bind(s, (void *)sa, sizeof sa) == -1 ? errno : 0;
	rump_sys_close(s);
	return rv;
}

static int do_bind(uint16_t port) {
	return do_bind_opt(port, 0);
}

static int nprocs_visible(void) {
	int mib[6] = { 1 /* CTL_KERN */, 47 /* KERN_PROC2 */, 0 /* KERN_PROC_ALL */, 0, 64, 1000 };
	static unsigned char buf[64 * 1000]; size_t len = sizeof buf;
	if (rump_sys___sysctl(mib, 6, buf, &len, NULL, 0) == -1) return -errno;
	return (int)(len / 64);
}

static void stats(uint64_t deny[5]) {
	unsigned char st[104]; size_t len = sizeof st;
	int e = sysctl_rw("security.models.cell.stats", st, &len, NULL, 0);
	if (e) { memset(deny, 0xff, 40); return; }
	memcpy(deny, st + 8, 40);
}

int main(void) {
	setvbuf(stdout, NULL, _IONBF, 0);
	rump_init();
	/* An explicit host-root process: the implicit one cannot be switched back to. */
	rump_pub_lwproc_rfork(RUMP_RFCFDG);
	const struct modinfo *mi = &secmodel_cell_modinfo;
	/* rump_init() already found the modinfo through link_set_modules and ran INIT. */
	CHECK("rump_init loaded the module from link_set_modules (explicit init -> EEXIST)",
	    rump_pub_module_init(&mi, 1) == EEXIST);

	char name[64]; size_t len = sizeof name;
	CHECK("read security.models.cell.name", sysctl_rw("security.models.cell.name", name, &len, NULL, 0) == 0);
	printf("     name = \"%s\"\n", name);
	int version = 0; len = sizeof version;
	CHECK("version node = 3", sysctl_rw("security.models.cell.version", &version, &len, NULL, 0) == 0 && version == 3);

	rump_sys_mkdir("/cells", 0755); rump_sys_mkdir("/cells/web", 0755);
	unsigned char cc[CC_SIZE], out[CC_SIZE];
	cell_create(cc, "web", "/cells/web", 1 /* medium */, 8080);
	len = sizeof out;
	int e = sysctl_rw("security.models.cell.create", out, &len, cc, sizeof cc);
	uint32_t id = 0; memcpy(&id, out + 4, 4);
	CHECK("create cell web (medium, port 8080) -> id 1", e == 0 && id == 1);
	len = sizeof out;
	CHECK("create duplicate name -> EEXIST", sysctl_rw("security.models.cell.create", out, &len, cc, sizeof cc) == EEXIST);
	cell_create(cc, "file", "/cells/web/nothere", 2, 0);
	len = sizeof out;
	CHECK("create with missing root -> ENOENT", sysctl_rw("security.models.cell.create", out, &len, cc, sizeof cc) == ENOENT);
	len = sizeof out;
	CHECK("create with short new length -> EINVAL", sysctl_rw("security.models.cell.create", out, &len, cc, 100) == EINVAL);

	unsigned char list[CI_SIZE * 4]; len = sizeof list;
	e = sysctl_rw("security.models.cell.list", list, &len, NULL, 0);
	uint32_t profile; uint16_t nports, port0; memcpy(&profile, list + 400, 4); memcpy(&nports, list + 404, 2); memcpy(&port0, list + 408, 2);
	CHECK("list: one cell, profile medium, port 8080", e == 0 && len == CI_SIZE && !strcmp((char *)list + 16, "web") && profile == 1 && nports == 1 && port0 == 8080);

	CHECK("host root binds reserved 8080 (bypass)", do_bind(8080) == 0);
	struct lwp *host = rump_pub_lwproc_curlwp();
	int host_procs = nprocs_visible();

	/* A host user. */
	rump_pub_lwproc_rfork(RUMP_RFCFDG);
	CHECK("setuid(1000)", rump_sys_setuid(1000) == 0);
	CHECK("host user binds reserved 8080 -> EACCES (DENY)", do_bind(8080) == EACCES);
	CHECK("host user binds unreserved 8081", do_bind(8081) == 0);
	len = sizeof list;
	CHECK("host user may list", sysctl_rw("security.models.cell.list", list, &len, NULL, 0) == 0);
	len = sizeof out;
	CHECK("host user create -> EPERM", sysctl_rw("security.models.cell.create", out, &len, cc, sizeof cc) == EPERM);
	struct lwp *user = rump_pub_lwproc_curlwp();
	rump_pub_lwproc_switch(host);

	/* Enter the cell. */
	rump_pub_lwproc_rfork(RUMP_RFCFDG);
	struct lwp *member = rump_pub_lwproc_curlwp();
	uint32_t one = 1;
	CHECK("enter without chroot -> EPERM", sysctl_rw("security.models.cell.id", NULL, NULL, &one, 4) == EPERM);
	CHECK("chroot /cells/web", rump_sys_chroot("/cells/web") == 0);
	CHECK("enter cell 1", sysctl_rw("security.models.cell.id", NULL, NULL, &one, 4) == 0);
	len = sizeof list;
	CHECK("in cell: list -> EPERM", sysctl_rw("security.models.cell.list", list, &len, NULL, 0) == EPERM);
	int n = 0; len = sizeof n;
	CHECK("in cell: read id -> EPERM", sysctl_rw("security.models.cell.id", &n, &len, NULL, 0) == EPERM);
	CHECK("in cell (root): bind own reserved 8080", do_bind(8080) == 0);
	CHECK("in cell: SO_REUSEPORT bind of an unreserved port denied (EACCES)", do_bind_opt(8081, 1) == EACCES);
	CHECK("in cell: SO_REUSEPORT bind of its own reserved port", do_bind_opt(8080, 1) == 0);
	CHECK("in cell: RLIMIT_AS hard limit set to the ceiling", set_as(AS_CEILING) == 0);
	CHECK("in cell: RLIMIT_AS raised above the ceiling denied (EPERM)", set_as(2 * AS_CEILING) == EPERM);
	CHECK("in cell: RLIMIT_AS lowered", set_as(AS_CEILING / 2) == 0);
	int rs = rump_sys_socket(34 /* PF_ROUTE */, 3 /* SOCK_RAW */, 0);
	CHECK("in cell (medium): routing socket denied", rs == -1);
	CHECK("in cell (medium): nested chroot denied", rump_sys_chroot("/") == -1 && errno == EPERM);
	char hn[] = "celled";
	CHECK("in cell (medium): sysctl write kern.hostname denied",
	    sysctl_rw("kern.hostname", NULL, NULL, hn, sizeof hn) == EPERM);
	CHECK("in cell (medium): mknod denied", rump_sys_mknod("/x", 0020644, 0x0101) == -1);
	int seen = nprocs_visible();
	printf("     processes visible: host root %d, in cell %d\n", host_procs, seen);
	CHECK("in cell: sees only its own process", seen == 1);
	CHECK("in cell: setuid(1000) (cred copy keeps the cell)", rump_sys_setuid(1000) == 0);
	CHECK("in cell after setuid: still denied list", sysctl_rw("security.models.cell.list", list, &len, NULL, 0) == EPERM);
	rump_pub_lwproc_switch(host);
	CHECK("host root sees the host user and the member too", nprocs_visible() == host_procs + 2);

	sleep(2); /* let the 1 Hz sampler run */
	len = sizeof list;
	sysctl_rw("security.models.cell.list", list, &len, NULL, 0);
	uint64_t refs, procs, mem; memcpy(&refs, list + 8, 8); memcpy(&procs, list + 344, 8); memcpy(&mem, list + 352, 8);
	uint64_t cdeny[5]; memcpy(cdeny, list + 472, 40);
	printf("     sampler: refs %llu procs %llu vmsize %llu; cell denies process=%llu system=%llu network=%llu\n",
	    (unsigned long long)refs, (unsigned long long)procs, (unsigned long long)mem,
	    (unsigned long long)cdeny[0], (unsigned long long)cdeny[1], (unsigned long long)cdeny[2]);
	CHECK("sampler counted the member process", refs == 1 && procs == 1);
	CHECK("per-cell deny counters exported in list", cdeny[1] >= 3 && cdeny[2] >= 1);
	uint32_t cid = 1;
	CHECK("destroy with a member -> EBUSY", sysctl_rw("security.models.cell.destroy", NULL, NULL, &cid, 4) == EBUSY);
	uint64_t deny[5]; stats(deny);
	printf("     deny counters process=%llu system=%llu network=%llu machdep=%llu device=%llu\n",
	    (unsigned long long)deny[0], (unsigned long long)deny[1], (unsigned long long)deny[2],
	    (unsigned long long)deny[3], (unsigned long long)deny[4]);
	CHECK("stats: network denies >= 2 (host user bind, routing socket)", deny[2] >= 2);
	CHECK("stats: process denies >= 1 (kern.proc2 CANSEE)", deny[0] >= 1);
	printf("     module FINI with a cell -> %d\n", rump_pub_module_fini(mi));

	rump_pub_lwproc_switch(member); rump_pub_lwproc_releaselwp(); rump_pub_lwproc_switch(host);
	rump_pub_lwproc_switch(user); rump_pub_lwproc_releaselwp(); rump_pub_lwproc_switch(host);
	CHECK("destroy after the member exited", sysctl_rw("security.models.cell.destroy", NULL, NULL, &cid, 4) == 0);
	CHECK("destroy again -> ENOENT", sysctl_rw("security.models.cell.destroy", NULL, NULL, &cid, 4) == ENOENT);
	len = sizeof list;
	CHECK("list empty", sysctl_rw("security.models.cell.list", list, &len, NULL, 0) == 0 && len == 0);
	e = rump_pub_module_fini(mi);
	printf("     module FINI without cells -> %d\n", e);
	printf("%d passed, %d failed\n", passes, failures);
	return failures != 0;
}
