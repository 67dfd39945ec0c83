#!/usr/bin/env bash
# Start/stop the local Open vSwitch (userspace datapath) for the emulated WAN.
#
#   infra/wan/ovs.sh start   start OVS with ovs-ctl unless it already runs; remember that we did
#   infra/wan/ovs.sh stop    stop OVS only if `start` started it (someone else's OVS is left alone)
#   infra/wan/ovs.sh status  exit 0 if ovs-vswitchd answers
#
# Needs root and the Debian package openvswitch-switch (installed here if missing and apt works).
# The marker file .local/ovs/started-by-tandem records that we started it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE_DIR="$ROOT/.local/ovs"
MARKER="$STATE_DIR/started-by-tandem"
OVS_CTL=/usr/share/openvswitch/scripts/ovs-ctl

die() { echo "ovs.sh: ERROR: $*" >&2; exit 1; }

answers() { timeout 5 ovs-vsctl --timeout=3 show >/dev/null 2>&1; }

ensure_installed() {
  if [[ -x "$OVS_CTL" ]] && command -v ovs-vsctl >/dev/null && command -v ovs-ofctl >/dev/null; then
    return 0
  fi
  [[ $EUID -eq 0 ]] || die "Open vSwitch is not installed and we are not root to install it"
  echo "ovs.sh: installing openvswitch-switch (apt-get)" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      openvswitch-switch iproute2 ethtool) >&2 || die "apt-get install openvswitch-switch failed"
}

start() {
  ensure_installed
  mkdir -p "$STATE_DIR"
  if answers; then
    echo "ovs.sh: Open vSwitch already running (not started by us unless marked)"
    return 0
  fi
  [[ $EUID -eq 0 ]] || die "starting Open vSwitch needs root"
  # Userspace datapath only: no kernel module is loaded or needed (bridges use datapath_type=netdev).
  if ! "$OVS_CTL" start --system-id=random --no-monitor >"$STATE_DIR/ovs-ctl.log" 2>&1; then
    cat "$STATE_DIR/ovs-ctl.log" >&2
    die "ovs-ctl start failed (see above); the emulated WAN cannot run without Open vSwitch"
  fi
  for _ in $(seq 1 50); do answers && break; sleep 0.1; done
  answers || { cat "$STATE_DIR/ovs-ctl.log" >&2; die "Open vSwitch started but ovs-vsctl gets no answer"; }
  date -u +%FT%TZ >"$MARKER"
  echo "ovs.sh: Open vSwitch started"
}

stop() {
  if [[ ! -f "$MARKER" ]]; then
    echo "ovs.sh: Open vSwitch was not started by tandem; leaving it alone"
    return 0
  fi
  "$OVS_CTL" stop >"$STATE_DIR/ovs-ctl-stop.log" 2>&1 || { cat "$STATE_DIR/ovs-ctl-stop.log" >&2; die "ovs-ctl stop failed"; }
  rm -f "$MARKER"
  echo "ovs.sh: Open vSwitch stopped"
}

status() {
  if answers; then
    echo "ovs.sh: running$([[ -f $MARKER ]] && echo ' (started by tandem)')"
  else
    echo "ovs.sh: not running"; return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
