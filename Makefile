# keyward: `make run` and `make test` work on a fresh Debian 12 machine as root.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
DATA_DIR ?= ./data
LISTEN ?= 127.0.0.1:7070

.PHONY: deps build build-check build-tsan run test test-unit test-integration test-asan test-tsan test-tsan-run fuzz bench format tidy clean

deps:
	@scripts/bootstrap

build/Makefile: CMakeLists.txt
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps build/Makefile
	$(MAKE) -C build -j$(JOBS) --no-print-directory

# make test's one build: clang, ASan+UBSan, -O0 with line tables, every test program and the
# libFuzzer targets. CI compiles each source once (it timed out building three configurations).
# Ninja, not Make: Make finishes a library before compiling any source of the targets that
# link it, which left one of CI's two cores idle for minutes. A build-check made by Make is
# replaced (cmake refuses to switch generators in place).
build-check/build.ninja: CMakeLists.txt
	@if [ -f build-check/Makefile ]; then echo "build-check: was made by Make, starting over with Ninja"; rm -rf build-check; fi
	cmake -S . -B build-check -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug -DKEYWARD_SANITIZE=ON -DKEYWARD_CCACHE=OFF

CHECK_TARGETS := unit_tests keyward keyward-fake-kms keyward-kms-emulator keyward-azure-wrap \
  keyward-aws-kms-tool keyward_rocksdb_plugin resp_parser_fuzz key_file_fuzz azure_reply_fuzz \
  aws_reply_fuzz rest_body_fuzz command_fuzz backup_manifest_fuzz \
  keyward_key_management keyward-mariadb-keyd mariadb_key_request_fuzz azure_blob_wire_fuzz \
  keyward-mariadb-backup-tool keyward-mariadb-galera-tool keyward_key_management_test
build-check: deps build-check/build.ninja
	ninja -C build-check -j$(JOBS) $(CHECK_TARGETS)

# ThreadSanitizer: clang at -O1 (TSan's own advice; -O0 runs several times slower), line tables,
# Ninja and the precompiled header like build-check.
build-tsan/build.ninja: CMakeLists.txt
	@if [ -f build-tsan/Makefile ]; then echo "build-tsan: was made by Make, starting over with Ninja"; rm -rf build-tsan; fi
	cmake -S . -B build-tsan -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug -DKEYWARD_TSAN=ON -DKEYWARD_CCACHE=OFF

TSAN_TARGETS := unit_tests keyward keyward-fake-kms keyward-kms-emulator keyward-azure-wrap keyward-aws-kms-tool \
  keyward_key_management keyward-mariadb-keyd keyward-mariadb-backup-tool keyward-mariadb-galera-tool \
  keyward_key_management_test
build-tsan: deps build-tsan/build.ninja
	ninja -C build-tsan -j$(JOBS) $(TSAN_TARGETS)

run: build
	@echo "keyward: keeping data in $(DATA_DIR) (override with make run DATA_DIR=...)"
	./build/keyward serve --data-dir $(DATA_DIR) --listen $(LISTEN)

test-unit: build
	cd build && ctest --output-on-failure -j2 -L unit

SANITIZER_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1

# Everything under ASan+UBSan: unit, integration and SDK conformance suites, then each fuzzer
# for FUZZ_SECONDS (default 15), then the same suites under ThreadSanitizer. scripts/test-all
# builds the TSan tree in the background (nice 19) while the ASan suites run.
test: build-check build-tsan/build.ninja
	TSAN_TARGETS="$(TSAN_TARGETS)" JOBS=$(JOBS) scripts/test-all

# Faster local loop: the unit tests and a fast integration subset (ASAN_INTEGRATION, a ctest
# regex: malformed frames and hostile clients) in the same sanitizer build.
ASAN_INTEGRATION ?= integration\.(api|canary|redis_clients)$$
test-asan: build-check
	cd build-check && $(SANITIZER_ENV) ctest --output-on-failure -j2 -L unit && \
	  $(SANITIZER_ENV) ctest --output-on-failure -j2 -R '$(ASAN_INTEGRATION)'

# The same suites against the optimized GCC build that make run starts.
INTEGRATION_TARGETS := keyward keyward-fake-kms keyward-kms-emulator keyward-azure-wrap keyward_rocksdb_plugin \
  keyward_key_management keyward-mariadb-keyd keyward-mariadb-backup-tool keyward-mariadb-galera-tool
test-integration: deps build/Makefile
	$(MAKE) -C build -j$(JOBS) --no-print-directory $(INTEGRATION_TARGETS)
	cd build && ctest --output-on-failure -j2 -L 'integration|conformance'

# ThreadSanitizer on the unit, integration and conformance suites (the servers the suites start
# are TSan builds too; the harness fails a suite whose server printed a report). Debian's RocksDB
# is not instrumented: reports with a frame inside it are suppressed (tests/tsan.supp says why);
# the suppression file never names our code. Not under TSan: integration.memory (it proves
# freed key and value bytes are wiped, a property of our allocator hooks that ASan's run covers;
# TSan's allocator keeps its own copies) and integration.rocksdb_plugin (the plugin is loaded
# into Debian's uninstrumented ldb, which would need the TSan runtime preloaded), and
# conformance.key_health (90 s mostly waiting out its check intervals; the monitor's threads are
# covered under TSan by KeyHealthMonitorTest and the other suites, and the suite runs under ASan),
# the browser suites (they test the console's pages in Chromium; the server paths they reach are
# the REST routes every other suite drives under TSan) and integration.mariadb_galera and
# mariadb_galera_cluster (three mariadbd processes and SSTs for one to three minutes; the key
# service and supervisor they use are under TSan in mariadb_encryption and mariadb_cluster). All of them run under ASan above.
TSAN_ENV := TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp"
test-tsan: build-tsan
	$(MAKE) --no-print-directory test-tsan-run
test-tsan-run:
	cd build-tsan && $(TSAN_ENV) ctest --output-on-failure -j2 -L 'unit|integration|conformance' \
	  -E 'integration\.(memory|rocksdb_plugin|mariadb_galera|mariadb_galera_cluster)$$|conformance\.key_health$$|^browser\.'

fuzz: deps
	scripts/fuzz $${FUZZ_SECONDS:-15}

bench: build
	bench/run-all

format:
	clang-format -i $$(git ls-files 'src/*.cc' 'src/*.h' 'tools/*.cc' 'tools/*.h' 'fuzz/*.cc' 'bench/*.cc')

tidy: build
	clang-tidy -p build --quiet $$(git ls-files 'src/*.cc')

clean:
	rm -rf build build-check build-asan build-tsan build-fuzz
