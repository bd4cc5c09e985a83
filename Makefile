# Cells: build, test and install. See README.md.
#
#   make            release build of the `cells` binary
#   make demo       build, then run the quickstart example stack end to end (root)
#   make test       everything CI runs: unit + integration tests (the Ansible collection
#                   with a cached ansible-core from PyPI), clippy, fmt, man and Ansible lint,
#                   kmod ABI tables against their headers, the kernel object; the
#                   conformance suite again at each profile and id model (test-profiles)
#   make install    PREFIX=/usr/local DESTDIR=  installs sbin/cells, the personality
#                   symlinks, man pages, rc.d scripts and bash/zsh/fish completion
#   make static     a statically linked cells (musl) for rescue media and
#                   minimal hosts: target/<arch>-unknown-linux-musl/release/cells
#   make kmod       the NetBSD kernel module (see kmod/README.md)
#   make fuzz       cargo-fuzz on every parser, FUZZ_SECONDS each (nightly Rust and
#                   cargo-fuzz); make test runs a stable-Rust loop over the same entry
#                   points (tests/fuzz.rs). More crash-test kills: CELLS_CRASH_KILLS=N.

PREFIX ?= /usr/local
DESTDIR ?=
CARGO ?= cargo
SBINDIR = $(DESTDIR)$(PREFIX)/sbin
MANDIR = $(DESTDIR)$(PREFIX)/share/man
RCDIR = $(DESTDIR)$(PREFIX)/share/cells/rc.d
BASHCOMPDIR = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR = $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHCOMPDIR = $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
PERSONALITIES = cellctl cellmgr cellui
BIN = target/release/cells
# The static build: musl, so that user and group lookups read /etc/passwd and
# /etc/group directly (static glibc would need its NSS modules at run time).
STATIC_TARGET ?= $(shell uname -m)-unknown-linux-musl
STATIC_BIN = target/$(STATIC_TARGET)/release/cells

.PHONY: all build static demo test test-profiles lint-man lint-ansible check-netbsd check-kmod install kmod clean fuzz

all: build

build:
	$(CARGO) build --release --bin cells

# rustup brings musl's C library and startup files with the target: no
# musl-gcc is needed (the crates are Rust, libc included).
static:
	@if [ "$$(uname -s)" != Linux ]; then \
		echo "make static: Linux only (see README.md, A static binary)" >&2; exit 1; fi
	@rustup target list --installed 2>/dev/null | grep -qx '$(STATIC_TARGET)' || \
		rustup target add $(STATIC_TARGET)
	$(CARGO) build --release --target $(STATIC_TARGET) --bin cells
	@echo "static binary: $(STATIC_BIN) ($$(wc -c <$(STATIC_BIN)) bytes)"

demo: build
	./scripts/install-deps.sh
	CELLS_BIN=$(CURDIR)/$(BIN) ./examples/quickstart/run.sh

test:
	./scripts/install-deps.sh
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) build --bin cells
	$(MAKE) static
	CELLS_ANSIBLE_VENV=$$(./scripts/ansible-venv.sh) $(CARGO) test --workspace
	$(MAKE) test-profiles
	$(MAKE) test-supervisor-process
	$(MAKE) lint-man
	$(MAKE) lint-ansible
	$(MAKE) -C kmod check-layout
	$(MAKE) check-netbsd
	$(MAKE) check-kmod

# Build and check the kernel object where nightly Rust with rust-src is
# installed (kmod/README.md); skipped, and said so, elsewhere.
check-kmod:
	@if rustup +nightly component list --installed 2>/dev/null | grep -q '^rust-src'; then \
		$(MAKE) -C kmod kmod; \
	else echo "check-kmod: skipped: no nightly toolchain with rust-src"; fi

# Compile coverage of the NetBSD userland where the target's std is installed
# (rustup target add x86_64-unknown-netbsd); skipped, and said so, elsewhere.
check-netbsd:
	@if rustup target list --installed 2>/dev/null | grep -q x86_64-unknown-netbsd; then \
		$(CARGO) check --bin cells --target x86_64-unknown-netbsd; \
	else echo "check-netbsd: skipped: rustup target x86_64-unknown-netbsd not installed"; fi

# The conformance suite at the profiles and id models the full run above
# does not use (it runs cells at high, in user namespaces): cells whose test
# names no profile get CELLS_TEST_PROFILE; CELLS_TEST_USERNS=NO keeps them
# on host ids. low always runs on host ids.
test-profiles:
	CELLS_TEST_PROFILE=medium $(CARGO) test --test conformance
	CELLS_TEST_PROFILE=low $(CARGO) test --test conformance
	CELLS_TEST_USERNS=NO $(CARGO) test --test conformance
	CELLS_TEST_PROFILE=medium CELLS_TEST_USERNS=NO $(CARGO) test --test conformance

# The supervision suites again with the services supervised by supervisor
# processes (CELL_SUPERVISOR=process) instead of the cells' inits (the
# default on Linux).
test-supervisor-process:
	CELLS_TEST_SUPERVISOR=process $(CARGO) test --test supervise --test service \
		--test damage --test host_root --test mgr_lifecycle --test events --test crash

lint-man:
	mandoc -Tlint -W warning man/*.[0-9]

# ansible-lint over contrib/ansible and examples/fleet, from the cached
# virtual environment of scripts/ansible-venv.sh.
lint-ansible:
	./scripts/lint-ansible.sh

install: build
	install -d $(SBINDIR) $(MANDIR)/man4 $(MANDIR)/man5 $(MANDIR)/man8 $(RCDIR)
	install -m 0755 $(BIN) $(SBINDIR)/cells
	for p in $(PERSONALITIES); do ln -sf cells $(SBINDIR)/$$p; done
	for m in man/*.[0-9]; do \
		s=$${m##*.}; install -m 0644 $$m $(MANDIR)/man$$s/; \
	done
	for r in rc.d/*; do [ -f "$$r" ] && install -m 0644 $$r $(RCDIR)/ || true; done
	# Completion, generated from the command table; bash and fish look a
	# script up by the command's name, so each personality gets a link.
	install -d $(BASHCOMPDIR) $(ZSHCOMPDIR) $(FISHCOMPDIR)
	$(BIN) completion bash >$(BASHCOMPDIR)/cells
	$(BIN) completion zsh >$(ZSHCOMPDIR)/_cells
	$(BIN) completion fish >$(FISHCOMPDIR)/cells.fish
	for p in $(PERSONALITIES); do \
		ln -sf cells $(BASHCOMPDIR)/$$p; ln -sf cells.fish $(FISHCOMPDIR)/$$p.fish; \
	done

kmod:
	$(MAKE) -C kmod kmod

FUZZ_SECONDS ?= 60
FUZZ_TARGETS = manifest apply_file cbor_state ipc_frames tar_headers

fuzz:
	@if cargo +nightly fuzz --version >/dev/null 2>&1; then \
		for t in $(FUZZ_TARGETS); do \
			cargo +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) -timeout=5 -rss_limit_mb=2048 || exit 1; \
		done; \
	else echo "fuzz: skipped: needs nightly Rust and cargo-fuzz (cargo install cargo-fuzz)"; fi

clean:
	$(CARGO) clean
