# The two commands the README promises: `make demo` and `make test`.
# Both set up everything first (scripts/bootstrap.sh is idempotent and fast when done).
SHELL := /bin/bash
VENV ?= .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: bootstrap demo test unit sanity lint integration molecule bench build docs clean-stack

bootstrap:
	bash scripts/bootstrap.sh

demo: bootstrap
	bash scripts/demo.sh

test: bootstrap
	bash scripts/test.sh

unit sanity lint integration molecule: bootstrap
	STACKOPS_TEST_LAYERS=$@ bash scripts/test.sh

bench: bootstrap
	bash benchmarks/run.sh

build: bootstrap
	ansible-galaxy collection build --force --output-path build/

# HTML docs of the collection (modules, roles, filters) in build/docs/html; fails on any warning.
docs: bootstrap
	bash scripts/docs.sh

clean-stack:
	docker compose --project-directory examples/stack down -v --remove-orphans
