#!/bin/sh
# The network-fault test of the PostgreSQL store (see tests/pg/README.md).
#
#   netfault.sh PG_NETFAULT START_SERVER_SH WORKDIR
#
# Makes two network namespaces joined by a veth pair on a private /30 (10.231.0.0/30, only
# inside these namespaces): the server's (10.231.0.1, PostgreSQL listens there) and the
# holder's (10.231.0.2). Runs `pg_netfault drive` for MAMA_NETFAULT_SECONDS (default 45, the
# CI run; the long mode is e.g. MAMA_NETFAULT_SECONDS=600), which cuts the veth link at random
# moments. Removes everything on exit. Exits 77 (CTest's skip) when not root or without ip/tc.
set -eu
bin=$1
start=$2
work=$3

if [ "$(id -u)" != 0 ]; then echo "netfault.sh: needs root (network namespaces): skipped"; exit 77; fi
for t in ip tc unshare runuser; do
  command -v "$t" >/dev/null 2>&1 || { echo "netfault.sh: $t not found (apt-get install iproute2 util-linux): skipped"; exit 77; }
done

tag=$$
ns_s=mama-nf-s-$tag
ns_h=mama-nf-h-$tag
dev_s=mnfs$tag
dev_h=mnfh$tag
rm -rf "$work"
mkdir -p "$work"

cleanup() {
  MAMA_PG_HOST=10.231.0.1 ip netns exec "$ns_s" sh "$start" --stop "$work/server" >/dev/null 2>&1 || true
  # Processes left in our namespaces (agents of a driver that died) end with them.
  for ns in "$ns_h" "$ns_s"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  done
  ip netns del "$ns_h" 2>/dev/null || true
  ip netns del "$ns_s" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if ! ip netns add "$ns_s" 2>/dev/null; then echo "netfault.sh: ip netns add is not allowed here: skipped"; exit 77; fi
ip netns add "$ns_h"
ip link add "$dev_s" type veth peer name "$dev_h"
ip link set "$dev_s" netns "$ns_s"
ip link set "$dev_h" netns "$ns_h"
ip -n "$ns_s" addr add 10.231.0.1/30 dev "$dev_s"
ip -n "$ns_h" addr add 10.231.0.2/30 dev "$dev_h"
for ns in "$ns_s" "$ns_h"; do ip -n "$ns" link set lo up; done
ip -n "$ns_s" link set "$dev_s" up
ip -n "$ns_h" link set "$dev_h" up
# The faults need the blackhole qdisc (netem is not in every kernel; blackhole is).
if ! ip netns exec "$ns_h" tc qdisc add dev "$dev_h" root blackhole 2>/dev/null; then
  echo "netfault.sh: tc cannot add a blackhole qdisc here: skipped"; exit 77
fi
ip netns exec "$ns_h" tc qdisc del dev "$dev_h" root

MAMA_PG_HOST=10.231.0.1 ip netns exec "$ns_s" sh "$start" "$work/server" >/dev/null
conninfo=$(cat "$work/server/conninfo")
echo "server: $conninfo (namespace $ns_s); holder namespace $ns_h"
# The driver runs in the server's namespace (it reaches the server there; it runs the agents
# and the faults in the namespaces by name).
ip netns exec "$ns_s" "$bin" drive "$conninfo" "${MAMA_NETFAULT_SECONDS:-45}" "$ns_h" "$dev_h" "$ns_s" "$dev_s" "$work"
