# SPDX-License-Identifier: Apache-2.0
# RxFlow: the two commands a new user needs are `make run` and `make test`.
# Both install what they need (Debian packages through scripts/install-deps.sh) first.
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
CMAKE_ARGS ?=
# The project's own builds require every component: a missing package fails configuration
# (naming it) instead of quietly building, and testing, less.
# A compiler warning is an error in the project's own builds (WERROR=OFF to build anyway with
# a compiler that warns about more).
WERROR     ?= ON
REQUIRE_ALL = -DRXFLOW_REQUIRE_ALL=ON -DRXFLOW_WERROR=$(WERROR)
JOBS       ?= $(shell nproc)
# ccache (used when installed: CMakeLists.txt) shares its results between checkouts at other
# paths — a CI's fresh clone, a second worktree — when paths under the checkout are hashed
# relative to it and the working directory is left out of the hash (ccache(1), "Compiling in
# different directories"). Without this, every new clone compiles everything again. Set either
# variable in the environment to override.
export CCACHE_BASEDIR   ?= $(CURDIR)
export CCACHE_NOHASHDIR ?= 1

.PHONY: all deps configure build run test test-fast test-asan test-tsan tidy soak bench load \
        fuzz format format-check docs clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(REQUIRE_ALL) $(CMAKE_ARGS)

configure: $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# The main job on embedded defaults: every service in one process (SQLite under
# ./rxflow-data, in-process broker, pharmacy simulator). It prints where it listens and a
# curl that works as is; Ctrl-C stops it.
run: build
	$(BUILD)/examples/rxflow serve

# The formatting check first (a clang-format difference fails the run), then the whole suite,
# then clang-tidy (any finding fails the run), then the same tests under AddressSanitizer +
# UndefinedBehaviorSanitizer, then the concurrency suites under ThreadSanitizer.
test: format-check test-fast tidy test-asan test-tsan

# ctest runs inside scripts/with-postgres.sh: a private PostgreSQL 15 for the postgres
# adapter's tests (they fail, never skip, without one).
test-fast: build
	bash scripts/with-postgres.sh sh -c 'cd $(BUILD) && ctest --output-on-failure -j $(JOBS)'

$(BUILD_ASAN)/build.ninja: | deps
	cmake -S . -B $(BUILD_ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DRXFLOW_SANITIZE=ON \
	  -DRXFLOW_BUILD_BENCHMARKS=OFF $(REQUIRE_ALL) $(CMAKE_ARGS)

test-asan: $(BUILD_ASAN)/build.ninja
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	bash scripts/with-postgres.sh sh -c 'cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 \
	  UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS) -LE no-asan'

# ThreadSanitizer over the suites where threads meet: the core (the store and broker contracts
# on the in-memory adapters, the aggregate), the service and its runtime (relay, routing,
# projections, the duplicate storm, concurrent submits), and the store contract on SQLite and
# PostgreSQL. Not librdkafka's adapter: its threads come from C11 thrd_create, which GCC 12's
# TSan does not intercept (they crash at their first allocation; tests/CMakeLists.txt). Only
# those executables are built, at -O1 with line tables only (-g1: reports name file and line,
# the build takes less of CI's time); any report fails the run (halt_on_error), with both
# stacks of a race.
TSAN_SUITES = core service sqlite postgres
$(BUILD_TSAN)/build.ninja: | deps
	cmake -S . -B $(BUILD_TSAN) -G Ninja -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O1 -g1" \
	  -DRXFLOW_SANITIZE_THREAD=ON -DRXFLOW_BUILD_BENCHMARKS=OFF -DRXFLOW_BUILD_EXAMPLES=OFF \
	  -DRXFLOW_BUILD_PYTHON=OFF $(REQUIRE_ALL) $(CMAKE_ARGS)

test-tsan: $(BUILD_TSAN)/build.ninja
	cmake --build $(BUILD_TSAN) -j $(JOBS) --target $(addprefix rxflow_,$(addsuffix _tests,$(TSAN_SUITES)))
	bash scripts/with-postgres.sh sh -c 'cd $(BUILD_TSAN) && \
	  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 history_size=4" \
	  ctest --output-on-failure -j $(JOBS) -L "^($(subst $(eval) ,|,$(TSAN_SUITES)))$$"'

# Coverage-guided fuzzing (clang + libFuzzer) of the reading entry points, one target at a
# time, each for FUZZ_SECONDS or FUZZ_RUNS executions (whichever ends first; FUZZ_RUNS=-1:
# no limit): `check` (rxflow::Check on any bytes, and ToFhirJson for SCRIPT), `script` (the
# SCRIPT read paths: strict and lenient, each version; tests/fuzz/targets.h) and `http` (one
# client's connection to the ingestion API: the server's reading steps, keys, every route, the
# pharmacy inbound route; tests/fuzz/http_target.h). Seeds: the fixtures (for http, the
# requests tests/fuzz/http_seeds.py writes, with a dictionary) and the committed corpus; what
# the run finds is merged (minimised) back into tests/fixtures/fuzz/<target>/ (inputs under
# 2 KiB, and the crash inputs), which `make test` replays. A long run of one target:
# `make fuzz FUZZ_TARGETS=http FUZZ_RUNS=10000000 FUZZ_SECONDS=14400`.
FUZZ_SECONDS ?= 120
FUZZ_RUNS ?= -1
FUZZ_TARGETS ?= check script http
fuzz: | deps
	CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DRXFLOW_BUILD_FUZZERS=ON -DRXFLOW_BUILD_TESTS=OFF -DRXFLOW_BUILD_BENCHMARKS=OFF \
	  -DRXFLOW_BUILD_EXAMPLES=OFF $(CMAKE_ARGS)
	cmake --build build-fuzz -j $(JOBS) --target $(addprefix rxflow_fuzz_,$(FUZZ_TARGETS))
	rm -rf build-fuzz/corpus && mkdir -p build-fuzz/corpus/check build-fuzz/corpus/script
	cp tests/fixtures/fhir/*.json tests/fixtures/script/*.xml build-fuzz/corpus/check/
	mkdir -p tests/fixtures/fuzz/check tests/fixtures/fuzz/script
	cp -r tests/fixtures/fuzz/check/. build-fuzz/corpus/check/
	for f in tests/fixtures/script/*.xml tests/fixtures/script/partners/*.xml; do \
	  for k in 0 1 2 3 4 5; do \
	    { printf "\\$$(printf %o $$k)"; cat "$$f"; } > build-fuzz/corpus/script/$$k-$$(basename $$f); \
	  done; \
	done
	# The encodings a partner may use (docs/mapping.md §4.6): UTF-16 with and without a mark.
	for f in tests/fixtures/script/*.xml; do \
	  { printf '\001'; iconv -f UTF-8 -t UTF-16 "$$f"; } > build-fuzz/corpus/script/1-utf16-$$(basename $$f); \
	  { printf '\000'; iconv -f UTF-8 -t UTF-16BE "$$f"; } > build-fuzz/corpus/script/0-utf16be-$$(basename $$f); \
	done
	cp -r tests/fixtures/fuzz/script/. build-fuzz/corpus/script/
	/usr/bin/python3 tests/fuzz/http_seeds.py tests/fixtures build-fuzz/corpus/http
	mkdir -p tests/fixtures/fuzz/http && cp -r tests/fixtures/fuzz/http/. build-fuzz/corpus/http/
	for t in $(FUZZ_TARGETS); do \
	  dict=; [ -f build-fuzz/corpus/$$t.dict ] && dict=-dict=build-fuzz/corpus/$$t.dict; \
	  build-fuzz/rxflow_fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -runs=$(FUZZ_RUNS) \
	    -max_len=65536 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 $$dict \
	    build-fuzz/corpus/$$t || exit 1; \
	  mkdir -p build-fuzz/min/$$t && build-fuzz/rxflow_fuzz_$$t -merge=1 build-fuzz/min/$$t \
	    build-fuzz/corpus/$$t && find tests/fixtures/fuzz/$$t -type f ! -name 'crash-*' -delete && \
	    find build-fuzz/min/$$t -type f -size -2k -exec cp {} tests/fixtures/fuzz/$$t/ \; && \
	    rm -rf build-fuzz/min/$$t || exit 1; \
	done

# Longer crash-safety runs: 500 SIGKILLs into SQLite, 100 into PostgreSQL.
soak: build
	RXFLOW_CRASH_ROUNDS=500 bash scripts/with-postgres.sh $(BUILD)/tests/rxflow_service_tests -ts="Crash safety"

# The HTTP load benchmark against `rxflow serve` (docs/performance.md).
LOAD_CONNECTIONS ?= 64
LOAD_SECONDS ?= 20
LOAD_RATE ?= 5000
LOAD_RATE_SECONDS ?= 60
load: build
	bash benchmarks/load/run.sh $(BUILD) $(LOAD_CONNECTIONS) $(LOAD_SECONDS) $(LOAD_RATE) $(LOAD_RATE_SECONDS)

bench: build
	bash scripts/with-postgres.sh $(BUILD)/benchmarks/rxflow_store_benchmarks --benchmark_min_time=2
	$(BUILD)/benchmarks/rxflow_benchmarks --benchmark_min_time=0.5

# Tracked sources and new ones not yet added (what .gitignore leaves out, e.g. build/, stays out).
FORMAT_FILES = $(shell git ls-files --cached --others --exclude-standard '*.h' '*.cc')
format:
	clang-format -i $(FORMAT_FILES)

# clang-tidy (.clang-tidy: bugprone, performance, modernize, abseil) over the library, the
# adapters and the programs, with the build's compile_commands.json. Every finding is an error
# (WarningsAsErrors); a justified exception is a NOLINT(check) with its reason beside it.
tidy: build
	run-clang-tidy-14 -p $(BUILD) -quiet -j $(JOBS) '^$(CURDIR)/(src|adapters|examples|tools)/'

# The documentation site (mkdocs, from docs/) with the C++ API reference (Doxygen) and the
# pictures rendered by Graphviz, the state diagram generated from the domain's own code
# (tools/state_diagram.cc): $(BUILD)/docs/site/index.html. `make test` builds it too (ctest docs).
docs: configure
	cmake --build $(BUILD) -j $(JOBS) --target rxflow_state_diagram
	bash scripts/build-docs.sh $(BUILD)/docs $(BUILD)/rxflow_state_diagram
	@echo "open $(BUILD)/docs/site/index.html"

format-check: | deps
	@clang-format --dry-run --Werror $(FORMAT_FILES) && \
	  echo "format-check: $(words $(FORMAT_FILES)) files as clang-format writes them"

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) build-fuzz
