# mailbastion: `make run` starts the all-in-one system; `make test` installs what the tests need and runs them.
# Debian's Python by default: the service user must be able to run the venv's interpreter (one under /root,
# e.g. pyenv's, is not reachable once serve drops root). PYTHON=... chooses another.
PYTHON ?= $(firstword $(wildcard /usr/bin/python3) python3)
VENV   := .venv
PY     := $(VENV)/bin/python
MB     := $(VENV)/bin/mailbastion
VAR    := var
# Tools the tests run but the project does not import (sslyze pins its own cryptography/nassl): a venv apart.
TOOLS_VENV := .venv-tools
TOOLS_LOCK := tests/tls/sslyze.lock
# Debian packages the tests use: a real clamd (the tests make its signature database), ClamAV's test
# files, PostgreSQL (the directory and audit log also run on it), runuser to start it as postgres, and
# unbound with ldnsutils (a validating resolver in front of a test zone the tests sign: DANE), gpg and openssl
# (the encryption code runs them: OpenPGP key generation, S/MIME to EC certificates and signature checks; the
# tests decrypt our output with them), slapd (a loopback LDAP server holding an OpenPGP key), nftables and
# iproute2 (tests/split: the gateway and the internal host in network namespaces, with their generated rules),
# Debian's chromium with chromium-driver (the portal's pages tested in a real browser; nothing downloads one),
# and Dovecot for IMAP (with the Lua passdb that asks our directory, IMAPSieve for Junk moves, lua-socket).
DOVECOT_PACKAGES := dovecot-imapd dovecot-auth-lua dovecot-sieve lua-socket
DEB_TEST_PACKAGES := clamav-daemon clamav clamav-testfiles postgresql util-linux unbound ldnsutils gpg gpg-agent \
  openssl slapd nftables iproute2 chromium chromium-driver $(DOVECOT_PACKAGES)
# Debian packages pip needs to build what has no wheel: PyICU (ICU's TR39 spoof checker) compiles against ICU.
DEB_BUILD_PACKAGES := python3-venv python3-dev libicu-dev pkg-config g++

# `serve` started as root runs as this user once its ports are bound (server.user in the configuration);
# it also owns the Maildirs, and Dovecot reads mail as it (`[imap] mail_user`).
SERVICE_USER := mailbastion

.PHONY: install tools run test deb-test-deps clamd-up dovecot-up service-user lock bench bench-outbound clean

$(VENV)/.installed: requirements.lock pyproject.toml
	@# Debian ships venv apart from python3: install it when it is missing (root only).
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-dev; }
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  missing=""; for p in $(DEB_BUILD_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  [ -z "$$missing" ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $$missing; }; \
	fi
	$(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $@

install: $(VENV)/.installed

$(TOOLS_VENV)/.installed: $(TOOLS_LOCK) | $(VENV)/.installed
	rm -rf $(TOOLS_VENV)
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install -q --upgrade pip
	$(TOOLS_VENV)/bin/python -m pip install -q -r $(TOOLS_LOCK)
	$(TOOLS_VENV)/bin/sslyze --help >/dev/null
	touch $@

tools: $(TOOLS_VENV)/.installed

$(VAR)/mailbastion.toml: | $(VENV)/.installed
	$(MB) init --dir $(VAR) --domain example.test

# The embedded default scans with clamd when it has signatures: install it, fetch signatures (freshclam
# needs the internet; offline, mail is deferred until clamd has signatures: README, "Without signatures"),
# start it. Root only.
clamd-up:
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  dpkg -s clamav-daemon >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends clamav-daemon clamav-freshclam; }; \
	  ls /var/lib/clamav/*.c[lv]d >/dev/null 2>&1 || timeout 120 freshclam --quiet || \
	    echo "freshclam could not fetch signatures: until clamd has some, every message gets 451 (antivirus.stale_policy; README: Without signatures)"; \
	  if ls /var/lib/clamav/*.c[lv]d >/dev/null 2>&1 && [ ! -S /var/run/clamav/clamd.ctl ]; then \
	    mkdir -p /var/run/clamav && chown clamav:clamav /var/run/clamav 2>/dev/null; \
	    service clamav-daemon start 2>/dev/null || clamd; \
	  fi; \
	fi

# As root: the service user exists and owns var/ (init does both for a new deployment; this covers an older one).
# The configuration file stays root's, readable by the service's group. Not root: serve runs as you.
service-user:
	@if [ "$$(id -u)" = "0" ]; then \
	  id -u $(SERVICE_USER) >/dev/null 2>&1 || useradd --system --user-group --no-create-home \
	    --home-dir /nonexistent --shell /usr/sbin/nologin $(SERVICE_USER); \
	  if [ -d $(VAR) ]; then \
	    chown -R $(SERVICE_USER):$(SERVICE_USER) $(VAR); \
	    chown root:$(SERVICE_USER) $(VAR)/mailbastion.toml && chmod 640 $(VAR)/mailbastion.toml; \
	    [ ! -f $(VAR)/tls/ca.key ] || chown root:root $(VAR)/tls/ca.key; \
	  fi; \
	fi

# IMAP: Debian's Dovecot (its own service stays off: `serve` runs it with a configuration of ours). Root only.
dovecot-up:
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  missing=""; for p in $(DOVECOT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  [ -z "$$missing" ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $$missing; }; \
	  if command -v systemctl >/dev/null && systemctl is-enabled dovecot >/dev/null 2>&1; then \
	    systemctl disable --now dovecot >/dev/null 2>&1 || true; \
	  fi; \
	fi

# `serve` binds its ports, then runs as $(SERVICE_USER) with no capability left (when started as root).
run: install clamd-up dovecot-up $(VAR)/mailbastion.toml service-user
	$(MB) serve -c $(VAR)/mailbastion.toml

# The tests start every server they use themselves, on loopback ports of their own: the packages'
# system services (slapd, Dovecot, unbound, clamd, PostgreSQL) are kept from starting at install
# (policy-rc.d, as Debian's container tooling does), so nothing listens on a public address.
deb-test-deps: service-user
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  missing=""; for p in $(DEB_TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    guard=0; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
	      chmod +x /usr/sbin/policy-rc.d; guard=1; fi; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	    status=$$?; [ $$guard = 1 ] && rm -f /usr/sbin/policy-rc.d; [ $$status = 0 ] || exit $$status; \
	  fi; \
	else echo "not root: skipping Debian packages ($(DEB_TEST_PACKAGES)); tests that need them will say so"; fi

# MAILBASTION_TOOLS_VENV: the TLS compliance tests fail (not skip) when sslyze is not there. --durations: CI's log
# names the slowest tests, so the 30-minute budget can be watched.
test: install tools deb-test-deps
	MAILBASTION_TOOLS_VENV=$(CURDIR)/$(TOOLS_VENV) $(PY) -m pytest -q -p no:cacheprovider --durations=25

# Regenerate the lock file from pyproject.toml (pins every transitive dependency).
lock:
	$(PYTHON) -m venv /tmp/mb-lock-venv && /tmp/mb-lock-venv/bin/pip install -q --upgrade pip \
	  && /tmp/mb-lock-venv/bin/pip install -q -e '.[test]' \
	  && /tmp/mb-lock-venv/bin/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock

# The message path next to Postfix's (root: it starts the anchor stack of ../shared/bench); bench/ has the rest.
bench: install
	$(PY) bench/message_path.py --profile path,full --postfix --concurrency 8,32

# Outbound: submission → remote MX next to Postfix submission + OpenDKIM (root; bench/outbound_compare.py).
BENCH_OUTBOUND_PACKAGES := postfix opendkim opendkim-tools sasl2-bin
bench-outbound: install
	@missing=""; for p in $(BENCH_OUTBOUND_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then apt-get install -y --no-install-recommends $$missing; fi
	PYTHONPATH=src $(PY) bench/outbound_compare.py --concurrency 1 8

clean:
	rm -rf $(VENV) $(TOOLS_VENV) build *.egg-info
