# pagetrack: Meson + Ninja behind make.  See README.md.
BUILD      ?= build
ASAN_BUILD ?= build-asan
PREFIX     ?= /usr/local
DESTDIR    ?=
MESON_OPTS ?=
# make check TESTS="test_tracker asan/test_tracker test_cli": only these
TESTS      ?=

.PHONY: all deps deps-test deps-demo build asan check demo bench install clean

all: build

# `make` and `make install` need only the build tools (and no root when
# they are present); `make check` and `make demo` install what they add.
deps:
	@sh scripts/deps.sh build

deps-test:
	@sh scripts/deps.sh build test

deps-demo:
	@sh scripts/deps.sh build demo

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD) --prefix=$(PREFIX) -Dwerror=$(if $(CI),true,false) $(MESON_OPTS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(ASAN_BUILD)/build.ninja: | deps
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false \
		-Dbuildtype=debug $(MESON_OPTS)

asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

check: deps-test build asan
	@sh tests/run-tests.sh $(BUILD) $(ASAN_BUILD) $(TESTS)

demo: deps-demo build
	@sh scripts/demo.sh $(BUILD)

bench: build
	@sh bench/run.sh $(BUILD)

install: build
	meson configure $(BUILD) --prefix=$(PREFIX) >/dev/null
	ninja -C $(BUILD) >/dev/null	# apply the prefix before installing
	DESTDIR=$(DESTDIR) meson install -C $(BUILD) --no-rebuild

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
