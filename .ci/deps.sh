#!/usr/bin/env bash
# Installs what the test suite needs when it is missing (Debian/Ubuntu, as
# root): clang, llvm and libbpf-dev for the BPF freshness check; iproute2 and
# ethtool for the network-namespace tests; haproxy, nginx, wrk and h2load for
# bench and, with nghttp and curl, the HTTP/2 tests; ngtcp2-client
# (gtlsclient) as an HTTP/3 client that is not quic-go; promtool (Debian
# package prometheus) for the metrics and alerting
# rules tests. Prints what is missing and exits 1 when it cannot install.
set -euo pipefail
need=()
command -v clang >/dev/null || need+=(clang)
command -v llvm-strip >/dev/null || need+=(llvm)
[ -e /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
command -v ip >/dev/null || need+=(iproute2)
command -v ethtool >/dev/null || need+=(ethtool)
command -v haproxy >/dev/null || need+=(haproxy)
command -v nginx >/dev/null || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v nghttp >/dev/null || need+=(nghttp2-client)
command -v curl >/dev/null || need+=(curl)
command -v gtlsclient >/dev/null || need+=(ngtcp2-client)
command -v promtool >/dev/null || need+=(prometheus)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The bench harness runs haproxy and nginx itself, never as services; the
  # tests need only promtool from the prometheus package, not its server.
  systemctl stop nginx haproxy prometheus >/dev/null 2>&1 || true
  exit 0
fi
echo "missing test dependencies: ${need[*]} (install them with apt-get as root)" >&2
exit 1
