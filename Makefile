# Tandem: the two commands are `make demo` and `make test` (see README.md). Both install what
# is missing (Debian packages when run as root, the virtual environment, Python packages, the
# Kafka jars, generated protobuf code) and are safe to run twice.

SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STATE := .local
STAMP := $(VENV)/.installed
PROTOS := $(wildcard protos/tandem/v1/*.proto)
GENERATED := $(patsubst protos/%.proto,%_pb2.py,$(PROTOS))
# Debian packages later parts need: the emulated WAN (OVS, ip, tc, ethtool, ping), the broker,
# libvirt's headers (libvirt-python builds against them).
DEBS := openvswitch-switch iproute2 ethtool iputils-ping maven openjdk-17-jre-headless \
        libvirt-dev pkg-config gcc
PYTEST_ARGS ?=
# Go tools the tests use as outside checkers, built from the Go module proxy into .local/go.
GO ?= $(shell command -v go || echo /usr/local/go/bin/go)
GRPCURL := $(STATE)/go/bin/grpcurl

.PHONY: help demo test deps kernels tools sysdeps venv protos protos-check kafka-up kafka-down kafka-status \
        topics lint typecheck lock clean vcsim-up vcsim-down vcsim-status

help:
	@echo "make demo   - set up everything and run the demo on a local Kafka broker"
	@echo "make test   - set up everything and run the whole test suite (starts and stops services)"
	@echo "make kafka-up | kafka-down | kafka-status | topics | protos | typecheck | lock | clean"
	@echo "make vcsim-up | vcsim-down | vcsim-status  - the local vCenter simulator"

deps: sysdeps venv protos kernels

# The engine's compiled path kernels (numba, cached on disk next to tandem/engine/kernels.py),
# compiled once per install by a small plan: otherwise the first decision of every fresh process
# compiles them (seconds), which blocked a test's event loop past its deadline in CI.
KERNELS := $(VENV)/.kernels
kernels: $(KERNELS)

$(KERNELS): tandem/engine/kernels.py tandem/engine/graph.py $(STAMP) $(GENERATED)
	@mkdir -p $(STATE)
	$(VENV)/bin/tandem plan --topology data/b4/B4.json --generate 40 --seed 1 --requests $(STATE)/kernels-warm-requests.jsonl >/dev/null
	$(VENV)/bin/tandem plan --topology data/b4/B4.json --requests $(STATE)/kernels-warm-requests.jsonl --out $(STATE)/kernels-warm-plan.jsonl >/dev/null
	@touch $@

# Debian packages: installed only when a command is missing, and only as root.
sysdeps:
	@missing=""; \
	command -v ovs-vsctl >/dev/null || missing="$$missing openvswitch-switch"; \
	command -v ip >/dev/null && command -v tc >/dev/null || missing="$$missing iproute2"; \
	command -v ethtool >/dev/null || missing="$$missing ethtool"; \
	command -v ping >/dev/null || missing="$$missing iputils-ping"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	pkg-config --exists libvirt 2>/dev/null || missing="$$missing libvirt-dev pkg-config"; \
	command -v gcc >/dev/null || missing="$$missing gcc"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else \
	    echo "missing Debian packages:$$missing (run make as root, or apt-get install them)" >&2; exit 1; \
	  fi; \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -U pip
	$(VPY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

# Generated code is never edited nor committed: it is rebuilt from protos/ when they change.
protos: $(GENERATED)

$(GENERATED) &: $(PROTOS) $(STAMP)
	$(VPY) -m grpc_tools.protoc -I protos --python_out=. --pyi_out=. $(PROTOS)
	@touch $(GENERATED)

tools: $(GRPCURL)

$(GRPCURL):
	@test -x "$(GO)" || { echo "Go is missing (needed to build grpcurl): install golang or set GO=" >&2; exit 1; }
	GOPATH=$(CURDIR)/$(STATE)/go GOFLAGS=-modcacherw $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4

kafka-up: venv
	$(VPY) infra/kafka/kafkactl up

vcsim-up: venv
	$(VPY) infra/vcsim/vcsimctl up

vcsim-down:
	$(PYTHON) infra/vcsim/vcsimctl down

vcsim-status:
	$(PYTHON) infra/vcsim/vcsimctl status

kafka-down:
	$(PYTHON) infra/kafka/kafkactl down

kafka-status:
	$(PYTHON) infra/kafka/kafkactl status

topics: deps kafka-up
	$(VENV)/bin/tandem infra topics

demo: deps kafka-up
	$(VENV)/bin/tandem infra topics
	$(VENV)/bin/tandem demo

test: deps tools
	bash infra/run-tests $(PYTEST_ARGS)

typecheck: deps
	$(VENV)/bin/mypy

# Re-resolve and pin the Python dependency set (after editing pyproject.toml).
lock:
	rm -rf $(STATE)/lockenv && $(PYTHON) -m venv $(STATE)/lockenv
	$(STATE)/lockenv/bin/pip install -q -e '.[dev]'
	{ sed -n '1,3p' constraints.txt; $(STATE)/lockenv/bin/pip freeze --exclude-editable | grep -v '^tandem'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf $(STATE)/lockenv

clean:
	$(PYTHON) infra/kafka/kafkactl down
	$(PYTHON) infra/vcsim/vcsimctl down
	rm -rf $(STATE) $(VENV) tandem/v1/*_pb2.py tandem/v1/*_pb2.pyi
