# The two commands a newcomer runs: `make up` and `make test`. Both install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Debian packages the runtime drives (later capabilities: tenant clusters, backups, Redis).
DEBIAN_PACKAGES := postgresql postgresql-contrib postgresql-15-pgaudit pgbackrest redis-server openssl git restic rclone prometheus prometheus-alertmanager
# What bench/ compares carehost with: Odoo's database manager zips the filestore.
BENCH_PACKAGES := zip unzip
# The longest files start first, so two at a time the suite ends with the short ones (not one long file alone).
SLOW_TEST_FILES := test/server-e2e.test.ts test/recovery-kill.test.ts src/runtime/local/local-recovery.test.ts src/runtime/local/local-filestore.test.ts
TEST_FILES = $(SLOW_TEST_FILES) $(filter-out $(SLOW_TEST_FILES),$(shell find src test -name '*.test.ts' | sort))

.PHONY: help install system-packages build up test typecheck lint format-check format unit bench clean

help:
	@echo "make up     install, build and start carehost with the demo organization"
	@echo "make test   install, type-check, lint and run every test"
	@echo "make bench  run the benchmarks under bench/"

# When root, install missing Debian packages; otherwise say exactly what to run and go on.
system-packages:
	@missing=""; for package in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$package"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
	  echo "carehost needs these Debian packages; run: sudo apt-get update && sudo apt-get install -y$$missing"; \
	fi

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: system-packages node_modules/.installed

build: install
	@rm -rf dist
	npx tsc -p tsconfig.build.json
	@if [ "$$(id -u)" = 0 ] && [ -d /usr/local/bin ] && [ ! -e /usr/local/bin/carehost -o -L /usr/local/bin/carehost ]; then \
	  ln -sfn "$(CURDIR)/bin/carehost" /usr/local/bin/carehost; \
	fi

up: build
	@command -v carehost >/dev/null || echo "tip: carehost is at $(CURDIR)/bin/carehost"
	node --enable-source-maps dist/src/cli/main.js up --spec examples/northwind-health.yaml

typecheck: install
	npx tsc -p tsconfig.json --noEmit

lint: install
	npx eslint --max-warnings=0 .

# One formatter (Prettier); `make format` rewrites, `make test` checks.
format-check: install
	npx prettier --check --log-level=warn .

format: install
	npx prettier --write --log-level=warn .

unit: install
	node --import tsx --test --test-concurrency=2 $(TEST_FILES)

test: typecheck lint format-check unit

bench: install
	@$(MAKE) --no-print-directory system-packages DEBIAN_PACKAGES="$(BENCH_PACKAGES)"
	@for bench in bench/*/*-bench.ts; do echo "== $$bench"; npx tsx $$bench || exit 1; done

clean:
	rm -rf dist
