# shellcheck shell=bash
# A worker node for the test control plane: containerd (Debian's), kube-scheduler, kubelet and
# kube-proxy (built from the same k8s.io/kubernetes release as kube-apiserver), and the CNI
# bridge plugin (Debian's containernetworking-plugins). Sourced by hack/testenv.sh, which calls
# node_prepare before the API server starts, node_start after it, node_stop before stopping it and
# node_remove_network after.
#
# Network: one bridge, $NODE_BRIDGE, holds the node's address $NODE_IP; every pod gets its own
# network namespace with an address in $NODE_CIDR on that bridge. Pods have routes only to the
# bridge's subnet and to the Service range (10.0.0.0/24), never a default route, and the bridge
# plugin masquerades nothing: test traffic stays on this machine. The API server listens on
# $NODE_IP, so pods reach it through the `kubernetes` Service and host processes directly.
#
# cgroups: the build machines mount cgroup v1. Kubernetes 1.35 deprecated it and the kubelet
# refuses it unless `failCgroupV1: false`, which is what we set; containerd 1.6 does not report
# its cgroup driver (the RuntimeConfig call came in containerd 2.0), so the kubelet falls back to
# its own `cgroupDriver: cgroupfs`, a fallback Kubernetes keeps until 1.38.

NODE_NAME="fco-testenv-node"
NODE_BRIDGE="fco0"
# Machine-wide, like the bridge: which state directory made it.
BRIDGE_OWNER="/run/fastconnect-testenv/$NODE_BRIDGE.owner"
NODE_CIDR="10.244.0.0/24"
NODE_IP="10.244.0.1"
SERVICE_CIDR="10.0.0.0/24"
NODE="$STATE/node"
NODE_SOCK="$NODE/containerd.sock"
# The sandbox ("pause") image is built here from the release's own pause.c: nothing is pulled.
PAUSE_IMAGE="localhost/fastconnect-testenv/pause:3.10"

node_tools() {
  local missing=() t
  for t in containerd containerd-shim-runc-v2 ctr runc ip nft umoci gcc; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  [ -x /usr/lib/cni/bridge ] || missing+=(cni)
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "a node needs: ${missing[*]} (and there is no apt-get)"
  local pkgs=()
  for t in "${missing[@]}"; do
    case "$t" in
      containerd-shim-runc-v2 | ctr) pkgs+=(containerd) ;;
      ip) pkgs+=(iproute2) ;;
      nft) pkgs+=(nftables) ;;
      cni) pkgs+=(containernetworking-plugins) ;;
      *) pkgs+=("$t") ;;
    esac
  done
  log "installing with apt-get: ${pkgs[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
}

# Certificates for the node's components, signed by the test CA (the API server trusts it).
node_pki() {
  node_client_cert kubelet "system:node:$NODE_NAME" system:nodes
  node_client_cert kube-proxy system:kube-proxy ""
  # The API server's own identity towards the kubelet (logs, exec).
  node_client_cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
}

node_client_cert() { # name CN O
  local subj="/CN=$2"
  [ -n "$3" ] && subj="/O=$3/CN=$2"
  openssl req -newkey rsa:2048 -nodes -subj "$subj" \
    -keyout "$PKI/$1.key" -out "$PKI/$1.csr" >/dev/null 2>&1
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' \
    >"$PKI/$1.ext"
  openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -extfile "$PKI/$1.ext" -out "$PKI/$1.crt" >/dev/null 2>&1
  chmod 600 "$PKI/$1.key"
}

node_kubeconfig() { # file port name
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fastconnect-testenv
  cluster:
    server: https://$NODE_IP:$2
    certificate-authority: $PKI/ca.crt
users:
- name: $3
  user:
    client-certificate: $PKI/$3.crt
    client-key: $PKI/$3.key
contexts:
- name: default
  context: {cluster: fastconnect-testenv, user: $3}
current-context: default
EOF
  chmod 600 "$1"
}

# The bridge must exist before the API server binds its address.
node_prepare() {
  node_tools
  if ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    local owner
    owner="$(cat "$BRIDGE_OWNER" 2>/dev/null || true)"
    if [ "$owner" != "$STATE" ]; then
      node_bridge_in_use "$owner" &&
        die "the bridge $NODE_BRIDGE belongs to the running test environment ${owner:-(unknown)}; one node per machine: stop it (hack/testenv.sh down there) first"
      # A run killed without `down` (a CI job cut at its time limit) leaves the bridge behind.
      log "reclaiming the bridge $NODE_BRIDGE left by a test environment that is gone (${owner:-unknown})"
      node_reclaim "$owner"
    fi
    ip link delete "$NODE_BRIDGE"
  fi
  mkdir -p "$NODE" "$(dirname "$BRIDGE_OWNER")"
  cat /proc/sys/net/ipv4/ip_forward >"$STATE/.ip_forward"
  ip link add "$NODE_BRIDGE" type bridge
  echo "$NODE_BRIDGE" >"$STATE/.node-bridge"
  echo "$STATE" >"$BRIDGE_OWNER"
  ip addr add "$NODE_IP/24" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  node_pki
}

# The bridge is in use while anything listens on its address (the API server of the environment
# that made it) or any component recorded by that environment still runs.
node_bridge_in_use() { # owner state dir
  [ -n "$(ss -Hltn "src $NODE_IP" 2>/dev/null)" ] && return 0
  [ -n "$1" ] && [ -d "$1/run" ] || return 1
  local c
  for c in $COMPONENTS containerd kube-scheduler kubelet kube-proxy; do
    (RUN="$1/run" owned_alive "$c") && return 0
  done
  return 1
}

# What a dead environment leaves on the machine besides its bridge: mounts under its node
# directory, kube-proxy's rules and sandboxes' network namespaces.
node_reclaim() { # owner state dir
  if [ -n "$1" ]; then
    awk -v p="$1/node/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r |
      while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -f "$1/.node-bridge"
  fi
  nft delete table ip kube-proxy 2>/dev/null || true
  nft delete table ip6 kube-proxy 2>/dev/null || true
  node_delete_orphan_netns
}

# Flags the API server needs to serve a node.
node_apiserver_flags() {
  printf '%s\n' \
    "--advertise-address=$NODE_IP" \
    "--bind-address=$NODE_IP" \
    "--kubelet-client-certificate=$PKI/apiserver-kubelet-client.crt" \
    "--kubelet-client-key=$PKI/apiserver-kubelet-client.key" \
    "--kubelet-preferred-address-types=InternalIP" \
    "--enable-admission-plugins=NodeRestriction"
}

node_write_containerd_config() {
  mkdir -p "$NODE/containerd" "$NODE/cni/net.d" "$NODE/cni/ipam"
  cat >"$NODE/containerd/config.toml" <<EOF
version = 2
root = "$NODE/containerd/root"
state = "$NODE/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "$NODE_SOCK"

[ttrpc]
  address = "$NODE_SOCK.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # The build machines' root lacks CAP_SYS_RESOURCE, so no process may lower its oom_score_adj
  # below its parent's (the kubelet asks -998 for sandboxes): clamp it instead of failing.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE/cni/net.d"
EOF
  # No default route and no masquerading: a pod reaches its bridge's subnet (the node, other
  # pods) and the Service range, nothing else.
  cat >"$NODE/cni/net.d/10-fastconnect-testenv.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "fastconnect-testenv",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$NODE_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "$SERVICE_CIDR"}],
        "dataDir": "$NODE/cni/ipam"
      }
    }
  ]
}
EOF
}

node_write_kubelet_config() { # kubelet-port healthz-port
  mkdir -p "$NODE/kubelet"
  cat >"$NODE/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $1
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $2
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$NODE_SOCK
# cgroup v1 on the build machines (see the top of this file).
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
# Test images are imported, never pulled: they must never be garbage-collected, and a nearly full
# disk must not evict the pods under test.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
maxPods: 30
serializeImagePulls: false
resolvConf: /etc/resolv.conf
EOF
}

node_write_kube_proxy_config() { # metrics-port healthz-port
  cat >"$NODE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $NODE/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
# nftables keeps every rule in kube-proxy's own table, which 'down' removes in one step.
mode: nftables
clusterCIDR: $NODE_CIDR
nodePortAddresses: ["$NODE_IP/32"]
metricsBindAddress: 127.0.0.1:$1
healthzBindAddress: 127.0.0.1:$2
# Leave the machine's conntrack settings as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

# The pause image from the release's own pause.c, compiled static: nothing is pulled.
node_pause_image() {
  local dir="$NODE/pause" src
  src="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')/build/pause/linux/pause.c"
  [ -f "$src" ] || die "pause.c not found in k8s.io/kubernetes@$K8S_VERSION ($src)"
  rm -rf "$dir"
  mkdir -p "$dir"
  gcc -Os -static -DVERSION="$K8S_VERSION" -o "$dir/pause" "$src" 2>"$dir/gcc.log" ||
    { cat "$dir/gcc.log" >&2; die "pause.c did not compile"; }
  umoci init --layout "$dir/oci" >/dev/null
  local tag="${PAUSE_IMAGE##*:}"
  umoci new --image "$dir/oci:$tag" >/dev/null
  umoci unpack --image "$dir/oci:$tag" "$dir/bundle" >/dev/null
  install -m 0755 "$dir/pause" "$dir/bundle/rootfs/pause"
  umoci repack --image "$dir/oci:$tag" "$dir/bundle" >/dev/null
  umoci config --image "$dir/oci:$tag" --config.entrypoint /pause --config.user 65535:65535 \
    --architecture amd64 --os linux >/dev/null
  (cd "$dir/oci" && tar -cf "$dir/pause.tar" .)
  node_import_image "$dir/pause.tar" "$PAUSE_IMAGE"
}

# Import an OCI archive into the node's containerd as `ref`. An OCI layout names its images by
# tag only (org.opencontainers.image.ref.name); ctr puts --base-name in front, so the archive must
# carry ref's tag.
node_import_image() { # archive ref
  node_ctr images import --base-name "${2%:*}" "$1" >/dev/null ||
    die "could not import $1 into the node's containerd"
  # Listed first, then searched: `ctr | grep -q` fails under pipefail when grep stops reading
  # before ctr has written everything (SIGPIPE).
  local images
  images="$(node_ctr images ls -q)"
  grep -qx "$2" <<<"$images" ||
    die "$1 was imported, but not as $2 (the node has: $(tr '\n' ' ' <<<"$images")); the archive's image must be tagged ${2##*:}"
}

node_ctr() { ctr --address "$NODE_SOCK" -n k8s.io "$@"; }
node_ctr_answers() { node_ctr version >/dev/null 2>&1; }

node_start() { # apiserver-port
  local apiport=$1 bindir=$BIN_DIR
  local kubelet_port proxy_metrics proxy_healthz
  kubelet_port="$(free_port)"
  KUBELET_HEALTHZ_PORT="$(free_port)"
  proxy_metrics="$(free_port)"
  proxy_healthz="$(free_port)"
  SCHEDULER_PORT="$(free_port)"
  cat >>"$RUN/state.env" <<EOF
NODE_NAME=$NODE_NAME
NODE_IP=$NODE_IP
KUBELET_HEALTHZ_PORT=$KUBELET_HEALTHZ_PORT
SCHEDULER_PORT=$SCHEDULER_PORT
EOF
  node_kubeconfig "$NODE/kubelet.kubeconfig" "$apiport" kubelet
  node_kubeconfig "$NODE/kube-proxy.kubeconfig" "$apiport" kube-proxy
  node_write_containerd_config
  node_write_kubelet_config "$kubelet_port" "$KUBELET_HEALTHZ_PORT"
  node_write_kube_proxy_config "$proxy_metrics" "$proxy_healthz"

  log "starting kube-scheduler"
  start kube-scheduler "$bindir/kube-scheduler" \
    --kubeconfig="$KUBECONFIG_FILE" \
    --authentication-kubeconfig="$KUBECONFIG_FILE" \
    --authorization-kubeconfig="$KUBECONFIG_FILE" \
    --authentication-skip-lookup=true \
    --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" \
    --leader-elect=false --profiling=false || return 1
  wait_until "kube-scheduler /healthz" 60 kube-scheduler scheduler_healthy || return 1

  log "starting containerd $(containerd --version | awk '{print $3}') (socket $NODE_SOCK)"
  start containerd "$(command -v containerd)" --config "$NODE/containerd/config.toml" || return 1
  wait_until "containerd" 60 containerd node_ctr_answers || return 1
  node_pause_image

  log "starting kubelet $K8S_VERSION as node $NODE_NAME ($NODE_IP)"
  start kubelet "$bindir/kubelet" \
    --config="$NODE/kubelet/config.yaml" \
    --kubeconfig="$NODE/kubelet.kubeconfig" \
    --root-dir="$NODE/kubelet/root" \
    --cert-dir="$NODE/kubelet/pki" \
    --hostname-override="$NODE_NAME" \
    --node-ip="$NODE_IP" || return 1
  log "starting kube-proxy (nftables)"
  start kube-proxy "$bindir/kube-proxy" --config="$NODE/kube-proxy.yaml" || return 1
  wait_until "node $NODE_NAME Ready" 120 kubelet node_ready || return 1
  wait_until "kube-proxy /healthz" 60 kube-proxy kube_proxy_healthy || return 1
  log "node $NODE_NAME is Ready"
}

scheduler_healthy() { curl -sfk --max-time 3 "https://127.0.0.1:$SCHEDULER_PORT/healthz" >/dev/null 2>&1; }
kube_proxy_healthy() { curl -sf --max-time 3 "http://127.0.0.1:$(sed -n 's/^healthzBindAddress: 127.0.0.1:\([0-9]*\)$/\1/p' "$NODE/kube-proxy.yaml")/healthz" >/dev/null 2>&1; }

node_ready() {
  "$BIN_DIR/kubectl" --kubeconfig="$KUBECONFIG_FILE" get node "$NODE_NAME" \
    -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True
}

# Pods first, through the API (the kubelet tears their networks down), then the components, then
# whatever a crash may have left: tasks, mounts, network namespaces, rules, the bridge.
node_stop() {
  load_state
  if owned_alive kubelet && apiserver_ready; then
    "$BIN_DIR/kubectl" --kubeconfig="$KUBECONFIG_FILE" delete pods --all --all-namespaces \
      --grace-period=0 --force --wait=false >/dev/null 2>&1 || true
    local deadline=$((SECONDS + 30))
    while [ -n "$(node_ctr tasks ls -q 2>/dev/null)" ] && [ $SECONDS -lt $deadline ]; do
      sleep 0.5
    done
  fi
  local c
  for c in kube-proxy kubelet kube-scheduler; do stop_component "$c"; done
  if owned_alive containerd; then
    local t
    for t in $(node_ctr tasks ls -q 2>/dev/null); do node_ctr tasks kill -s KILL "$t" >/dev/null 2>&1 || true; done
  fi
  stop_component containerd
  pkill -KILL -f "containerd-shim-runc-v2 -namespace k8s.io .*-address $NODE_SOCK" 2>/dev/null || true
  node_unmount_all
  nft delete table ip kube-proxy 2>/dev/null || true
  nft delete table ip6 kube-proxy 2>/dev/null || true
  rm -rf "${NODE:?}"
}

# After the API server has stopped: it listens on the bridge's address until then.
node_remove_network() {
  if [ "$(cat "$STATE/.node-bridge" 2>/dev/null)" = "$NODE_BRIDGE" ]; then
    ip link delete "$NODE_BRIDGE" 2>/dev/null || true
    rm -f "$STATE/.node-bridge"
    [ "$(cat "$BRIDGE_OWNER" 2>/dev/null)" = "$STATE" ] && rm -f "$BRIDGE_OWNER"
  fi
  if [ -f "$STATE/.ip_forward" ]; then
    cat "$STATE/.ip_forward" >/proc/sys/net/ipv4/ip_forward 2>/dev/null || true
    rm -f "$STATE/.ip_forward"
  fi
}

# Volumes of the kubelet, containerd's snapshots and sandboxes' network namespaces.
node_unmount_all() {
  local m
  # Deepest first.
  awk -v p="$NODE/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  node_delete_orphan_netns
}

# Network namespaces of sandboxes whose teardown never ran: containerd names them cni-<uuid>.
node_delete_orphan_netns() {
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '/^cni-/ { print $1 }'); do
    if [ -z "$(ip netns pids "$ns" 2>/dev/null)" ]; then ip netns delete "$ns" 2>/dev/null || true; fi
  done
}
