# The README's two commands: `make demo` and `make test`. Each installs what it
# needs on a fresh Debian 12 machine (as root) and starts libvirt when no init
# system runs it.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
TEST_STATE ?= /var/tmp/labmgr-test-state

DEB_PACKAGES := libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients libvirt-dev pkg-config \
	qemu-system-x86 qemu-utils dnsmasq-base iptables debootstrap e2fsprogs iproute2 \
	python3 python3-venv python3-dev gcc libxml2-utils \
	openssh-server openssh-client postgresql mariadb-server mariadb-client \
	tmux librsvg2-bin chromium chromium-driver ovmf \
	grub-pc-bin grub-efi-amd64-bin grub-common mtools dosfstools fdisk gnupg restic pgbackrest

.PHONY: demo demo-down test bench deps venv libvirt clean

demo: venv libvirt
	$(VENV)/bin/labmgr demo

demo-down: venv libvirt
	$(VENV)/bin/labmgr demo down

test: venv libvirt
	LABMGR_ACCEL=tcg LABMGR_STATE_DIR=$(TEST_STATE) $(PY) -m pytest -v -ra -n 0

# Every bench/*.py (not _common.py), each printing its figures next to those
# recorded in docs/benchmarks.md. `make test` runs them all with --quick.
BENCH_ARGS ?=
bench: venv libvirt
	@set -e; for b in bench/[a-z]*.py; do \
		echo "== $$b"; LABMGR_ACCEL=tcg LABMGR_STATE_DIR=$(TEST_STATE) $(PY) $$b $(BENCH_ARGS); done

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# setuptools always adds an "Editable installation" notice (information, not a
# problem) for a package whose folders are mapped (network_templates/,
# examples/demo/); it is filtered out so the install prints nothing.
$(VENV)/.installed: pyproject.toml | deps
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# libvirt under systemd is started by it; without an init system we start it.
# /dev/kvm gets Debian's usual group kvm, mode 660 (udev does this where it runs):
# when QEMU cannot open an existing /dev/kvm, libvirt re-probes QEMU on every
# call, which made each domain definition take minutes. Labs still choose TCG
# where KVM does not work (see docs/spec.md, accel).
libvirt: deps
	@if [ -e /dev/kvm ] && getent group kvm >/dev/null; then chgrp kvm /dev/kvm && chmod 660 /dev/kvm; fi
	@if ! virsh -c qemu:///system version >/dev/null 2>&1; then \
		if [ -d /run/systemd/system ]; then systemctl start virtlogd libvirtd; \
		else mkdir -p /run/libvirt; pgrep -x virtlogd >/dev/null || virtlogd -d; \
		     pgrep -x libvirtd >/dev/null || libvirtd -d; fi; \
		for i in $$(seq 50); do virsh -c qemu:///system version >/dev/null 2>&1 && break; sleep 0.2; done; \
	fi
	@virsh -c qemu:///system version >/dev/null

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
