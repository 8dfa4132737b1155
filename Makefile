# pagetrack: Meson + Ninja behind make.  See README.md.
BUILD      ?= build
ASAN_BUILD ?= build-asan
PREFIX     ?= /usr/local
DESTDIR    ?=
MESON_OPTS ?=
# make check TESTS="test_tracker asan/test_tracker test_cli": only these
TESTS      ?=

.PHONY: all deps build asan check demo bench install clean

all: build

deps:
	@sh scripts/deps.sh

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD) --prefix=$(PREFIX) -Dwerror=$(if $(CI),true,false) $(MESON_OPTS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(ASAN_BUILD)/build.ninja: | deps
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false \
		-Dbuildtype=debug $(MESON_OPTS)

asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

check: build asan
	@sh tests/run-tests.sh $(BUILD) $(ASAN_BUILD) $(TESTS)

demo: build
	@sh scripts/demo.sh $(BUILD)

bench: build
	@sh bench/run.sh $(BUILD)

install: build
	meson configure $(BUILD) --prefix=$(PREFIX) >/dev/null
	DESTDIR=$(DESTDIR) meson install -C $(BUILD) --no-rebuild

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
