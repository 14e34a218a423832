# swift-udp: build, install and check.
#
#   make                               release build of `udp` (and `udp-studio`), its man page and shell completions
#   make install PREFIX=$HOME/.local   ... installed under PREFIX (default /usr/local; DESTDIR is honoured)
#   make uninstall PREFIX=...          removes exactly what install put there
#   make check-install                 installs into a temporary prefix and checks what landed there
#   make docs                          UDPKit's documentation (DocC); fails on any warning or a snippet that does not compile
#                                      (snippets may import UDPText too, which it builds)
#   make format                        formats the tree's Swift files in place with .swift-format
#   make lint                          swift format lint --strict over the same files (what CI runs)
#   make benchmarks-check              the in-process benchmarks (Benchmarks/) against their checked-in thresholds
#   make benchmarks-update             records new thresholds (after a deliberate change; commit Benchmarks/Thresholds)
#
# Everything builds in SCRATCH (default .build), so `benchmarks/run` and these targets share one release build.

SHELL = /bin/bash

PREFIX ?= /usr/local
DESTDIR ?=
SWIFT ?= swift
SCRATCH ?= .build

BINDIR = $(DESTDIR)$(PREFIX)/bin
MANDIR = $(DESTDIR)$(PREFIX)/share/man/man1
# Where each shell looks for completions under a prefix: bash-completion's completionsdir, zsh's
# site-functions (on $fpath for /usr and /usr/local), fish's vendor_completions.d.
BASHDIR = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHDIR = $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHDIR = $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d

SWIFTPM = $(SWIFT) build --scratch-path $(SCRATCH) -c release
STAGE = $(SCRATCH)/install-stage
# The Swift files swift format formats and checks (Benchmarks/ is a package of its own, formatted the same way).
FORMAT_PATHS = Package.swift Sources Tests Examples benchmarks Benchmarks/Package.swift Benchmarks/Benchmarks
# argument-parser's generate-manual plugin writes one page per command-line tool here.
MANUAL = $(SCRATCH)/plugins/GenerateManual/outputs/udp/udp.1

.PHONY: all build manual completions install uninstall check-install docs format lint benchmarks-check benchmarks-update

all: build manual completions

build:
	$(SWIFTPM) --product udp
	$(SWIFTPM) --product udp-studio

# The plugin builds every product in release (the same build as above) and runs `udp --experimental-dump-help`.
# It writes the help's blank lines as they are, which mdoc warns about: they become paragraph breaks (.Pp).
manual: build
	$(SWIFT) package --scratch-path $(SCRATCH) generate-manual --configuration release
	@test -s $(MANUAL) || { echo "make: $(MANUAL) was not generated" >&2; exit 1; }
	@mkdir -p $(STAGE)
	sed 's/^$$/.Pp/' $(MANUAL) > $(STAGE)/udp.1

completions: build
	@mkdir -p $(STAGE)
	bin=$$($(SWIFTPM) --show-bin-path) && \
	"$$bin/udp" --generate-completion-script bash > $(STAGE)/udp.bash && \
	"$$bin/udp" --generate-completion-script zsh > $(STAGE)/_udp && \
	"$$bin/udp" --generate-completion-script fish > $(STAGE)/udp.fish

install: all
	install -d $(BINDIR) $(MANDIR) $(BASHDIR) $(ZSHDIR) $(FISHDIR)
	install -m 755 "$$($(SWIFTPM) --show-bin-path)/udp" $(BINDIR)/udp
	install -m 755 "$$($(SWIFTPM) --show-bin-path)/udp-studio" $(BINDIR)/udp-studio
	install -m 644 $(STAGE)/udp.1 $(MANDIR)/udp.1
	install -m 644 $(STAGE)/udp.bash $(BASHDIR)/udp
	install -m 644 $(STAGE)/_udp $(ZSHDIR)/_udp
	install -m 644 $(STAGE)/udp.fish $(FISHDIR)/udp.fish

uninstall:
	rm -f $(BINDIR)/udp $(BINDIR)/udp-studio $(MANDIR)/udp.1 $(BASHDIR)/udp $(ZSHDIR)/_udp $(FISHDIR)/udp.fish

# Installs into a fresh temporary prefix and checks each file: the binary runs and reports UDPKit's version,
# man renders the page, and every completion script is non-empty and parses in its shell (bash also loads
# it and must then complete `udp`); zsh and fish are checked where they are installed.
check-install:
	@set -eu; prefix=$$(mktemp -d); trap 'rm -rf "$$prefix"' EXIT; \
	$(MAKE) --no-print-directory install PREFIX="$$prefix" DESTDIR=; \
	version=$$(sed -n 's/.*static let current = "\(.*\)".*/\1/p' Sources/UDPKit/UDPKitVersion.swift); \
	reported=$$("$$prefix/bin/udp" --version); \
	[ "$$reported" = "$$version" ] || { echo "check-install: udp --version said '$$reported', expected '$$version'" >&2; exit 1; }; \
	echo "check-install: bin/udp --version: $$reported"; \
	page_url=$$(timeout -s INT 3 "$$prefix/bin/udp" studio --http 127.0.0.1:0 --no-browser | head -n 1 || true); \
	case "$$page_url" in http://127.0.0.1:*) ;; *) echo "check-install: udp studio did not serve its page (it runs bin/udp-studio): '$$page_url'" >&2; exit 1;; esac; \
	echo "check-install: bin/udp studio runs bin/udp-studio and serves its page"; \
	page=$$(MANWIDTH=80 MANPAGER=cat man -l "$$prefix/share/man/man1/udp.1" 2>"$$prefix/man.err"); \
	echo "$$page" | grep -q "^NAME" || { echo "check-install: man -l did not render the page:" >&2; echo "$$page" | head -20 >&2; exit 1; }; \
	[ ! -s "$$prefix/man.err" ] || { echo "check-install: man -l warned:" >&2; head -20 "$$prefix/man.err" >&2; exit 1; }; \
	rm -f "$$prefix/man.err"; \
	for sub in send listen echo; do \
	    echo "$$page" | grep -q "udp $$sub" || { echo "check-install: the man page does not mention 'udp $$sub'" >&2; exit 1; }; \
	done; \
	echo "check-install: man -l share/man/man1/udp.1: $$(echo "$$page" | wc -l) lines"; \
	for f in share/bash-completion/completions/udp share/zsh/site-functions/_udp share/fish/vendor_completions.d/udp.fish; do \
	    [ -s "$$prefix/$$f" ] || { echo "check-install: $$f is missing or empty" >&2; exit 1; }; \
	done; \
	bash -n "$$prefix/share/bash-completion/completions/udp"; \
	bash -c 'source "$$1" && complete -p udp >/dev/null' _ "$$prefix/share/bash-completion/completions/udp" \
	    || { echo "check-install: the bash completion does not register a completion for udp" >&2; exit 1; }; \
	echo "check-install: bash completion parses and loads"; \
	if command -v zsh >/dev/null; then zsh -n "$$prefix/share/zsh/site-functions/_udp"; echo "check-install: zsh completion parses"; \
	else echo "check-install: zsh not installed, its completion not parsed"; fi; \
	if command -v fish >/dev/null; then fish -n "$$prefix/share/fish/vendor_completions.d/udp.fish"; echo "check-install: fish completion parses"; \
	else echo "check-install: fish not installed, its completion not parsed"; fi; \
	$(MAKE) --no-print-directory uninstall PREFIX="$$prefix" DESTDIR=; \
	left=$$(find "$$prefix" -type f); \
	[ -z "$$left" ] || { echo "check-install: uninstall left: $$left" >&2; exit 1; }; \
	echo "check-install: passed"

# DocC prints warnings for broken links and undocumented parameters without failing: --warnings-as-errors makes
# them fail, and any warning left in the log fails too (but SwiftPM's own notes on dependencies' unhandled files).
docs:
	@set -eu; log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	$(SWIFT) package --scratch-path $(SCRATCH) generate-documentation --target UDPKit --warnings-as-errors 2>&1 | tee "$$log"; \
	status=$${PIPESTATUS[0]}; \
	if [ "$$status" -ne 0 ] || grep -vE "file\(s\) which are unhandled" "$$log" | grep -qiE "^(warning|error):|: (warning|error):"; then \
	    echo "make docs: DocC reported problems (above)" >&2; exit 1; \
	fi; \
	$(SWIFT) build --scratch-path $(SCRATCH) --target UDPText; \
	scripts/check-doc-snippets --scratch-path $(SCRATCH)

format:
	$(SWIFT) format format --in-place --recursive --parallel $(FORMAT_PATHS)

lint:
	$(SWIFT) format lint --strict --recursive --parallel $(FORMAT_PATHS)

# package-benchmark exits non-zero both when a run is worse than the thresholds and when it is better by more than
# the tolerances: only "worse" fails here; "better" asks for `make benchmarks-update`.
benchmarks-check:
	@set -u; out=$$(mktemp); trap 'rm -f "$$out"' EXIT; \
	cd Benchmarks && $(SWIFT) package benchmark thresholds check --path "$$PWD/Thresholds" --no-progress >"$$out"; \
	status=$$?; cat "$$out"; \
	if [ "$$status" -eq 0 ]; then exit 0; fi; \
	if grep -q "is BETTER than the defined thresholds" "$$out" && ! grep -q "is WORSE than the defined thresholds" "$$out"; then \
	    echo "benchmarks: better than the thresholds; record them with make benchmarks-update"; exit 0; \
	fi; \
	echo "benchmarks: worse than the thresholds in Benchmarks/Thresholds (above), or the run failed" >&2; exit 1

benchmarks-update:
	cd Benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark thresholds update --no-progress
