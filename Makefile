# Entry points named in the README. Each one installs what it needs first.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
REPOSITORY ?= examples/repository
LISTEN ?= 127.0.0.1:50051
# ccache hits survive the checkout moving (CI clones into another folder).
export CCACHE_BASEDIR ?= $(CURDIR)
export CCACHE_NOHASHDIR ?= 1

.PHONY: deps build serve test test-bookworm test-trixie fuzz-smoke sanitize clean

deps:
	bash scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

$(REPOSITORY)/.complete: examples/make_repository.py examples/lenet.py
	/usr/bin/python3 examples/make_repository.py $(REPOSITORY)

# Starts the daemon on the example repository (written by real PyTorch on
# first use); Ctrl-C drains and stops it. Builds only what it serves.
serve: deps $(BUILD)/build.ninja $(REPOSITORY)/.complete
	cmake --build $(BUILD) -j $(JOBS) --target weightd weightctl
	$(BUILD)/server/weightd --repository $(REPOSITORY) --listen $(LISTEN) --logtostderr

# Both lanes: Debian 12 (LibTorch/PyTorch 1.13, this machine) and Debian 13
# (LibTorch/PyTorch 2.6, in a cached debootstrap root; scripts/trixie-lane.sh).
test: test-bookworm test-trixie

test-bookworm: build fuzz-smoke
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-trixie:
	JOBS=$(JOBS) bash scripts/trixie-lane.sh

# Builds the libFuzzer targets with clang and runs each for a short while.
fuzz-smoke: deps
	bash tests/fuzz/smoke.sh

# The suite under ASan+UBSan+LSan (build-asan), then the server and
# reliability tests under TSan (build-tsan); see tests/RELIABILITY.md. Not part
# of `make test`: two more cold builds would take CI past its time budget.
sanitize: deps
	bash scripts/sanitize.sh asan
	bash scripts/sanitize.sh tsan

clean:
	rm -rf $(BUILD) build-fuzz build-trixie
