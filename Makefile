# Every target that needs RabbitMQ/PostgreSQL runs scripts/ensure-infra.sh
# first: it starts them, or installs them from Debian packages, or fails.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST := $(PY) -m pytest

PHONY_CLUSTER := cluster cluster-infra cluster-faults bench-cluster
.PHONY: $(PHONY_CLUSTER) fresh-check install infra browser sms-gateway migrate run test unit integration e2e browser-tests faults fuzz lint bench clean-test-data mutate dead-events

install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

infra:
	bash scripts/ensure-infra.sh

## Debian's chromium and a CJK font for the browser tier (installed when absent).
browser: install
	PY=$(PY) bash scripts/ensure-browser.sh

migrate: install infra
	$(PY) -m services.common.plumbing.migrate --all

## The whole platform: five services + SMS/email capture, gateway on :8000.
## SMS_GATEWAY=kannel: SMS through Kannel to the SMSC simulator, with receipts.
run: install infra $(if $(filter kannel,$(SMS_GATEWAY)),sms-gateway)
	$(PY) -m devtools.platform $(if $(INSTANCES),--instances $(INSTANCES))

## The platform on clusters (devtools/cluster.py): 3 RabbitMQ nodes, 2
## PostgreSQL under Patroni + etcd, HAProxy (gateway on :8000, stats :8404),
## Prometheus :9090, 2 of every service and 2 gateways. Runs beside the
## machine's single RabbitMQ and PostgreSQL. Ctrl-C stops all of it.
cluster: install cluster-infra
	$(PY) -m devtools.cluster

cluster-infra:
	bash scripts/ensure-cluster.sh

## What HA costs: send_code and logins on the cluster vs the single-node
## platform, same run, as ratios (bench/cluster.py).
bench-cluster: install infra cluster-infra
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || { echo "[bench] FATAL: cannot install wrk" >&2; exit 1; }
	$(PY) -m bench.cluster

## Faults under load on the cluster (tests/cluster): a RabbitMQ node killed
## and a rolling restart, the PostgreSQL primary killed, a gateway killed,
## one instance of each service killed. Its own ports (gateway :8100).
cluster-faults: install infra cluster-infra
	$(PYTEST) tests/cluster

lint: install
	$(PY) -m ruff check services devtools tests bench
	$(PY) -m ruff format --check services devtools tests bench

## No broker, no database: passes on a bare machine.
unit: install
	$(PYTEST) tests/unit

integration: install infra
	$(PYTEST) tests/integration

e2e: install infra
	$(PYTEST) tests/e2e --ignore=tests/e2e/browser

## The web pages in headless Chromium; screenshots in .artifacts/screenshots.
## Its own process without eventlet: Playwright's sync driver and eventlet's
## hub do not share a thread (the driver never stops under monkey-patching).
browser-tests: install infra browser
	TESTS_WITHOUT_EVENTLET=1 $(PYTEST) tests/e2e/browser

## Hypothesis fuzzing of the pure parsers (ID numbers, names, OneRoster,
## SCIM filters and PATCH, photos): 20,000 fresh examples per property (~12 min).
## `make test` runs the same properties with 300 fixed examples each.
fuzz: install
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-20000} FUZZ_RANDOM=1 TESTS_WITHOUT_EVENTLET=1 $(PYTEST) tests/fuzz

## Faults under load: two instances of every back-end service, kill -9 of
## each in turn, RabbitMQ and PostgreSQL restarted under the load. It owns
## this machine's broker and database while it runs: run it alone.
faults: install infra
	$(PYTEST) tests/faults

## Every tier, against real RabbitMQ and PostgreSQL. CI runs exactly this.
## The fault tier's quick scenarios (a kill -9, a broker restart) run last
## but one: they restart this machine's RabbitMQ. Last, the cluster tier's
## baseline and its kill -9 of the busiest RabbitMQ node, on a cluster of
## its own (cluster-infra installs patroni, etcd, haproxy, prometheus).
## Debian's kannel for the SMS gateway tests (installed when absent).
sms-gateway:
	bash scripts/ensure-kannel.sh

test: install infra cluster-infra browser sms-gateway lint
	$(PYTEST) tests/unit tests/fuzz tests/integration tests/e2e --ignore=tests/e2e/browser
	TESTS_WITHOUT_EVENTLET=1 $(PYTEST) tests/e2e/browser
	$(PYTEST) tests/faults -m quick_fault
	$(PYTEST) tests/cluster -m quick_fault

bench: install infra
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || { echo "[bench] FATAL: cannot install wrk" >&2; exit 1; }
	$(PY) -m bench.report

## Mutation testing of the pure domain modules against the unit tier
## (pyproject's [tool.mutmut]); prints the surviving mutants per module.
mutate: install
	rm -rf mutants
	TESTS_WITHOUT_EVENTLET=1 $(PY) -m mutmut run
	$(PY) -m devtools.mutation_report

## The README's two commands on a fresh Debian 12 minbase root (debootstrap)
## with only the README's prerequisites, from a clone of the committed main.
## Stops this machine's RabbitMQ and PostgreSQL while it runs and starts them
## again after, even on failure. ~15 min; run it before every change to the
## set-up scripts or the dependencies. Not part of `make test`.
fresh-check:
	bash scripts/fresh-check.sh

## Drop databases and vhosts left by killed test runs.
clean-test-data: install infra
	$(PY) -m devtools.cleanup
