#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for tests, CI and the demo:
# etcd + kube-apiserver (+ kube-controller-manager), built from the Go module proxy by
# hack/testenv/build.sh into a cache outside the repository.
#
# Usage: hack/testenv.sh up [--node]|down|restart etcd|apiserver|env|status|logs|build|import-image FILE REF
#   up      build what is missing, start the control plane (harmless when it already runs)
#   up --node   the same plus a worker node that runs pods: kube-scheduler, kubelet, kube-proxy,
#           containerd and a CNI bridge (hack/testenv/node.sh; root, Linux). FCO_TESTENV_NODE=1
#           does the same.
#   import-image FILE REF   import an OCI archive into the node's containerd as REF
#   restart etcd|apiserver   stop one component and start it again with the same data, ports and
#           certificates (a fault for benches/fleet.rs); waits until the API server serves again
#   down    stop exactly the processes `up` started and remove their data (logs are kept)
#   env     print `export ...` lines to eval: KUBECONFIG, PATH (our kubectl/helm), FCO_TESTENV_LOGS
#   status  what runs: pids, ports, versions
#   logs    the tail of each component's log (FCO_LOG_LINES=N for more)
#   build   only build what is missing
#
# Environment: FCO_TESTENV_DIR (state dir, default <repo>/.testenv), FCO_CACHE_DIR (binary cache,
# default ~/.cache/fastconnect-operator), FCO_K8S_VERSION (one Kubernetes release to use),
# FCO_KCM_CONTROLLERS (controllers of kube-controller-manager).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/hack/testenv/build.sh"
STATE="${FCO_TESTENV_DIR:-$ROOT/.testenv}"
PKI="$STATE/pki"
RUN="$STATE/run"
LOGS="$STATE/logs"
DATA="$STATE/data"
KUBECONFIG_FILE="$STATE/kubeconfig"
KCM_CONTROLLERS="${FCO_KCM_CONTROLLERS:-serviceaccount,serviceaccount-token,garbagecollector,namespace}"
# Stop order (reverse of start order).
COMPONENTS="kube-controller-manager kube-apiserver etcd"
# shellcheck source=hack/testenv/node.sh
. "$ROOT/hack/testenv/node.sh"

log() { printf '[testenv] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ensure_tools() {
  local missing=() t
  for t in openssl curl base64 setsid; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "missing tools: ${missing[*]} (and no apt-get to install them)"
  log "installing missing tools with apt-get: ${missing[*]}"
  local pkgs=()
  for t in "${missing[@]}"; do
    case "$t" in
      base64) pkgs+=(coreutils) ;;
      setsid) pkgs+=(util-linux) ;;
      *) pkgs+=("$t") ;;
    esac
  done
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >&2
}

# ---------------------------------------------------------------------------------------------
# Recorded state: $RUN/<component>.pid, $RUN/<component>.exe and $RUN/state.env.

pid_of() { cat "$RUN/$1.pid" 2>/dev/null || true; }

# True if the recorded pid of a component is alive and still runs the binary we started.
owned_alive() { # component
  local pid exe want
  pid="$(pid_of "$1")"
  [ -n "$pid" ] || return 1
  want="$(cat "$RUN/$1.exe" 2>/dev/null || true)"
  [ -n "$want" ] || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  # A binary replaced on disk while running shows as "<path> (deleted)".
  [ "$exe" = "$want" ] || [ "$exe" = "$want (deleted)" ]
}

load_state() {
  # shellcheck disable=SC1091
  [ -f "$RUN/state.env" ] && . "$RUN/state.env"
  return 0
}

admin_token() { cat "$PKI/admin.token"; }

apiserver_ready() {
  load_state
  [ -n "${APISERVER_PORT:-}" ] || return 1
  curl -sf --max-time 5 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(admin_token)" \
    "https://${APISERVER_HOST:-127.0.0.1}:$APISERVER_PORT/readyz" >/dev/null 2>&1
}

running() {
  owned_alive etcd && owned_alive kube-apiserver && apiserver_ready
}

# ---------------------------------------------------------------------------------------------

free_port() {
  local p i taken
  for i in $(seq 1 200); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
    taken=0
    # Not in use as a listening port, and not already handed out by this script.
    if command -v ss >/dev/null 2>&1; then
      [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ] || taken=1
    elif (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      taken=1
    fi
    case " ${USED_PORTS:-} " in *" $p "*) taken=1 ;; esac
    if [ $taken -eq 0 ]; then
      USED_PORTS="${USED_PORTS:-} $p"
      echo "$p"
      return 0
    fi
    : "$i"
  done
  die "no free port found"
}

gen_pki() {
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  local o="$PKI"
  # A CA, and a serving certificate for the API server signed by it, so that the kubeconfig
  # carries certificate-authority-data (no insecure-skip-tls-verify).
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=fastconnect-testenv-ca" \
    -keyout "$o/ca.key" -out "$o/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$o/apiserver.key" -out "$o/apiserver.csr" >/dev/null 2>&1
  cat >"$o/apiserver.ext" <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.0.0.1,IP:$NODE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
  openssl x509 -req -in "$o/apiserver.csr" -CA "$o/ca.crt" -CAkey "$o/ca.key" -CAcreateserial \
    -days 3650 -extfile "$o/apiserver.ext" -out "$o/apiserver.crt" >/dev/null 2>&1
  # Service-account token signing keys (TokenRequest).
  openssl genrsa -out "$o/sa.key" 2048 >/dev/null 2>&1
  openssl rsa -in "$o/sa.key" -pubout -out "$o/sa.pub" >/dev/null 2>&1
  # The admin credential: a static token in group system:masters.
  openssl rand -hex 32 >"$o/admin.token"
  printf '%s,admin,admin,"system:masters"\n' "$(admin_token)" >"$o/tokens.csv"
  chmod 600 "$o"/*.key "$o/admin.token" "$o/tokens.csv"
}

write_kubeconfig() { # file port host
  local tmp="$1.tmp"
  cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fastconnect-testenv
  cluster:
    server: https://$3:$2
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: admin
  user:
    token: $(admin_token)
contexts:
- name: fastconnect-testenv
  context:
    cluster: fastconnect-testenv
    user: admin
    namespace: default
current-context: fastconnect-testenv
EOF
  chmod 600 "$tmp"
  mv -f "$tmp" "$1"
}

# Start a component in a session of its own with its output in its log; record its pid/binary.
start() { # component binary args...
  local name=$1 bin=$2
  shift 2
  : >"$LOGS/$name.log"
  # fd 8 is the state lock (lock_state); the component must not keep it open.
  setsid "$bin" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 8>&- &
  local pid=$!
  echo "$pid" >"$RUN/$name.pid"
  readlink -f "$bin" >"$RUN/$name.exe"
  # setsid execs in place when it need not fork; make sure the pid is the binary's.
  local i
  for i in $(seq 1 50); do
    owned_alive "$name" && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  log "$name did not start; its log:"
  tail -n 30 "$LOGS/$name.log" >&2 || true
  return 1
}

wait_until() { # description timeout-seconds component command...
  local what=$1 timeout=$2 comp=$3 deadline
  shift 3
  deadline=$((SECONDS + timeout))
  until "$@"; do
    if ! owned_alive "$comp"; then
      log "$comp exited while waiting for $what; the end of its log:"
      tail -n 40 "$LOGS/$comp.log" >&2 || true
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "timed out after ${timeout}s waiting for $what; the end of the $comp log:"
      tail -n 40 "$LOGS/$comp.log" >&2 || true
      return 1
    fi
    sleep 0.5
  done
}

etcd_healthy() { curl -sf --max-time 3 "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null | grep -q '"health":"true"'; }
kcm_healthy() { curl -sfk --max-time 3 "https://127.0.0.1:$KCM_PORT/healthz" >/dev/null 2>&1; }

# etcd and kube-apiserver with the settings recorded in $RUN/state.env (`up` and `restart`).
start_etcd() {
  start etcd "$BIN_DIR/etcd" \
    --name=testenv \
    --data-dir="$DATA/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="testenv=http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster-state=new \
    --unsafe-no-fsync \
    --log-level=warn
}

start_apiserver() {
  local node_flags=() sa_admission=()
  # With a node the API server listens on the node's address too.
  if [ "$APISERVER_HOST" != 127.0.0.1 ]; then
    mapfile -t node_flags < <(node_apiserver_flags)
  fi
  if [ ! -x "$BIN_DIR/kube-controller-manager" ]; then
    # Without the controller manager nobody creates the `default` service accounts.
    sa_admission=(--disable-admission-plugins=ServiceAccount)
  fi
  start kube-apiserver "$BIN_DIR/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    "${node_flags[@]}" \
    --secure-port="$APISERVER_PORT" \
    --cert-dir="$PKI" \
    --tls-cert-file="$PKI/apiserver.crt" \
    --tls-private-key-file="$PKI/apiserver.key" \
    --token-auth-file="$PKI/tokens.csv" \
    --client-ca-file="$PKI/ca.crt" \
    --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --allow-privileged=true \
    --profiling=false \
    "${sa_admission[@]}"
}

# Stops one component of a running control plane and starts it again with the same settings,
# data, ports and certificates (a fault for tests and benchmarks); waits until it serves.
cmd_restart() { # etcd|apiserver
  running || die "the control plane is not up; run: $0 up"
  load_state
  case "${1:-}" in
    etcd)
      [ -n "${ETCD_PEER_PORT:-}" ] ||
        die "this control plane was started before 'restart' existed (no ETCD_PEER_PORT); run '$0 down' and '$0 up'"
      stop_component etcd
      start_etcd || die "etcd did not start again"
      wait_until "etcd /health" 60 etcd etcd_healthy || die "etcd did not become healthy again"
      wait_until "kube-apiserver /readyz" 120 kube-apiserver apiserver_ready ||
        die "kube-apiserver did not become ready after etcd's restart"
      ;;
    apiserver | kube-apiserver)
      stop_component kube-apiserver
      start_apiserver || die "kube-apiserver did not start again"
      wait_until "kube-apiserver /readyz" 180 kube-apiserver apiserver_ready ||
        die "kube-apiserver did not become ready again"
      ;;
    *) die "usage: $0 restart etcd|apiserver" ;;
  esac
  log "restarted $1"
}

cmd_up() {
  local node="${FCO_TESTENV_NODE:-}"
  [ "${1:-}" = "--node" ] && node=1
  [ "$node" = 0 ] && node=""
  ensure_tools
  local bindir helmdir="" k8s_version
  if [ -n "$node" ]; then
    bindir="$("$BUILD" node-bindir)"
  else
    bindir="$("$BUILD" bindir)"
  fi
  k8s_version="$(basename "$(dirname "$bindir")")"
  k8s_version="${k8s_version#k8s-}"
  if ! helmdir="$("$BUILD" helm-bindir)"; then
    log "WARNING: helm did not build; continuing without it"
    helmdir=""
  fi

  if running; then
    if [ -n "$node" ] && [ -z "${NODE_NAME:-}" ]; then
      die "the control plane runs without a node; run '$0 down' first, then '$0 up --node'"
    fi
    log "already running (kube-apiserver pid $(pid_of kube-apiserver), port $APISERVER_PORT${NODE_NAME:+, node $NODE_NAME})"
    return 0
  fi
  # Anything left from a run that died half-way goes first.
  if [ -d "$RUN" ]; then
    log "cleaning up a previous run that is not healthy"
    cmd_down
  fi

  mkdir -p "$RUN" "$LOGS" "$DATA"
  rm -rf "${DATA:?}/"* "${PKI:?}"
  gen_pki

  local apiserver_host=127.0.0.1 kcm_controllers=$KCM_CONTROLLERS
  if [ -n "$node" ]; then
    node_prepare
    apiserver_host=$NODE_IP
    # Pods need Deployments, ReplicaSets, EndpointSlices (for Services) and the root CA ConfigMap
    # that every service-account token volume mounts; nodelifecycle lifts the not-ready taint.
    kcm_controllers="$kcm_controllers,deployment,replicaset,endpointslice,root-ca-cert-publisher,podgc,nodelifecycle"
  fi

  USED_PORTS=""
  ETCD_PORT="$(free_port)"
  local etcd_peer_port
  etcd_peer_port="$(free_port)"
  APISERVER_PORT="$(free_port)"
  APISERVER_HOST=$apiserver_host
  KCM_PORT="$(free_port)"
  BIN_DIR=$bindir
  ETCD_PEER_PORT=$etcd_peer_port
  local etcd_version
  etcd_version="$(cat "$(dirname "$bindir")/etcd.version" 2>/dev/null || echo unknown)"
  cat >"$RUN/state.env" <<EOF
K8S_VERSION=$k8s_version
ETCD_VERSION=$etcd_version
BIN_DIR=$bindir
HELM_BIN_DIR=$helmdir
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$etcd_peer_port
APISERVER_PORT=$APISERVER_PORT
APISERVER_HOST=$APISERVER_HOST
KCM_PORT=$KCM_PORT
EOF

  log "starting etcd $etcd_version on 127.0.0.1:$ETCD_PORT"
  start_etcd || { cmd_down; die "etcd did not start"; }
  wait_until "etcd /health" 60 etcd etcd_healthy || { cmd_down; die "etcd did not become healthy"; }

  log "starting kube-apiserver $k8s_version on https://$APISERVER_HOST:$APISERVER_PORT"
  start_apiserver || { cmd_down; die "kube-apiserver did not start"; }
  wait_until "kube-apiserver /readyz" 180 kube-apiserver apiserver_ready ||
    { cmd_down; die "kube-apiserver did not become ready"; }
  write_kubeconfig "$KUBECONFIG_FILE" "$APISERVER_PORT" "$APISERVER_HOST"

  if [ -x "$bindir/kube-controller-manager" ]; then
    log "starting kube-controller-manager (controllers: $kcm_controllers)"
    mkdir -p "$PKI/kcm"
    start kube-controller-manager "$bindir/kube-controller-manager" \
      --kubeconfig="$KUBECONFIG_FILE" \
      --authentication-kubeconfig="$KUBECONFIG_FILE" \
      --authorization-kubeconfig="$KUBECONFIG_FILE" \
      --authentication-skip-lookup=true \
      --bind-address=127.0.0.1 \
      --secure-port="$KCM_PORT" \
      --cert-dir="$PKI/kcm" \
      --leader-elect=false \
      --controllers="$kcm_controllers" \
      --use-service-account-credentials=false \
      --service-account-private-key-file="$PKI/sa.key" \
      --root-ca-file="$PKI/ca.crt" \
      --profiling=false ||
      { cmd_down; die "kube-controller-manager did not start"; }
    wait_until "kube-controller-manager /healthz" 90 kube-controller-manager kcm_healthy ||
      { cmd_down; die "kube-controller-manager did not become healthy"; }
  else
    log "no kube-controller-manager built: no garbage collection, namespaces stay Terminating"
  fi
  if [ -n "$node" ]; then
    node_start "$APISERVER_PORT" || { cmd_down; die "the node did not start; see $LOGS"; }
  fi
  log "control plane is up; use it with: eval \"\$($0 env)\""
}

stop_component() { # component
  local name=$1 pid i
  pid="$(pid_of "$name")"
  if [ -n "$pid" ] && owned_alive "$name"; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null && owned_alive "$name"; then
      log "$name (pid $pid) did not exit on SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
    fi
    kill -0 "$pid" 2>/dev/null && owned_alive "$name" && die "$name (pid $pid) is still running"
  elif [ -n "$pid" ]; then
    log "$name (pid $pid) is not running (or the pid now belongs to another program); not touching it"
  fi
  rm -f "$RUN/$name.pid" "$RUN/$name.exe"
}

cmd_down() {
  local c
  if [ -f "$STATE/.node-bridge" ] || [ -d "$NODE" ]; then
    node_stop
  fi
  for c in $COMPONENTS; do
    stop_component "$c"
  done
  node_remove_network
  rm -rf "${RUN:?}" "${DATA:?}" "${PKI:?}" "$KUBECONFIG_FILE"
  # Logs stay for a post-mortem; the next `up` truncates them.
}

cmd_env() {
  load_state
  if [ -z "${BIN_DIR:-}" ] || [ ! -f "$KUBECONFIG_FILE" ]; then
    log "the control plane is not up; run: $0 up"
    return 1
  fi
  local path="$BIN_DIR"
  [ -n "${HELM_BIN_DIR:-}" ] && path="$path:$HELM_BIN_DIR"
  printf 'export KUBECONFIG=%q\n' "$KUBECONFIG_FILE"
  # shellcheck disable=SC2016 # $PATH is expanded by the shell that evals this
  printf 'export PATH=%q:"$PATH"\n' "$path"
  printf 'export FCO_TESTENV_LOGS=%q\n' "$LOGS"
  printf 'export FCO_K8S_VERSION=%q\n' "${K8S_VERSION:-}"
  # Tests that need pods run only where a node is up; they reach it (and pods reach the test's
  # sandbox) at this address.
  if [ -n "${NODE_IP:-}" ]; then
    printf 'export FCO_TESTENV_NODE_IP=%q\n' "$NODE_IP"
    printf 'export FCO_TESTENV_CONTAINERD=%q\n' "$NODE_SOCK"
  else
    printf 'unset FCO_TESTENV_NODE_IP FCO_TESTENV_CONTAINERD\n'
  fi
}

cmd_status() {
  load_state
  if [ ! -d "$RUN" ]; then
    echo "not running (state dir: $STATE)"
    return 1
  fi
  echo "state dir:   $STATE"
  echo "kubeconfig:  $KUBECONFIG_FILE"
  echo "binaries:    ${BIN_DIR:-?} (helm: ${HELM_BIN_DIR:-none})"
  local c port rc=0
  local shown="etcd kube-apiserver kube-controller-manager"
  [ -n "${NODE_NAME:-}" ] && shown="$shown kube-scheduler containerd kubelet kube-proxy"
  for c in $shown; do
    case "$c" in
      etcd) port="${ETCD_PORT:-}" ;;
      kube-apiserver) port="${APISERVER_PORT:-}" ;;
      kube-controller-manager) port="${KCM_PORT:-}" ;;
      kube-scheduler) port="${SCHEDULER_PORT:-}" ;;
      kubelet) port="${KUBELET_HEALTHZ_PORT:-} (healthz)" ;;
      *) port="-" ;;
    esac
    if owned_alive "$c"; then
      printf '%-24s running  pid %-8s port %s\n' "$c" "$(pid_of "$c")" "$port"
    elif [ -f "$RUN/$c.pid" ]; then
      printf '%-24s DEAD     pid %-8s (see %s)\n' "$c" "$(pid_of "$c")" "$LOGS/$c.log"
      rc=1
    else
      printf '%-24s not started\n' "$c"
    fi
  done
  echo "etcd version: ${ETCD_VERSION:-?}"
  if apiserver_ready; then
    local v
    v="$(curl -sf --max-time 5 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(admin_token)" \
      "https://${APISERVER_HOST:-127.0.0.1}:$APISERVER_PORT/version" | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')"
    echo "kube-apiserver: ready, /version gitVersion $v"
  else
    echo "kube-apiserver: NOT ready"
    rc=1
  fi
  [ -n "${HELM_BIN_DIR:-}" ] && echo "helm: $("$HELM_BIN_DIR/helm" version --short 2>/dev/null || echo '?')"
  return $rc
}

cmd_logs() {
  local n="${FCO_LOG_LINES:-60}" f
  for f in "$LOGS"/etcd.log "$LOGS"/kube-apiserver.log "$LOGS"/kube-controller-manager.log \
    "$LOGS"/kube-scheduler.log "$LOGS"/containerd.log "$LOGS"/kubelet.log "$LOGS"/kube-proxy.log; do
    [ -f "$f" ] || continue
    echo "===== last $n lines of $f ====="
    tail -n "$n" "$f"
  done
}

# One `up`/`down` at a time per state dir.
lock_state() {
  mkdir -p "$STATE"
  exec 8>"$STATE/.lock"
  command -v flock >/dev/null 2>&1 && flock 8
  return 0
}

case "${1:-}" in
  up) lock_state; cmd_up "${2:-}" ;;
  restart) lock_state; cmd_restart "${2:-}" ;;
  down) lock_state; cmd_down ;;
  env) cmd_env ;;
  status) cmd_status ;;
  logs) cmd_logs ;;
  build) "$BUILD" all ;;
  import-image)
    [ $# -eq 3 ] || die "usage: $0 import-image FILE REF"
    load_state
    { [ -n "${NODE_NAME:-}" ] && owned_alive containerd; } || die "no node is up; run: $0 up --node"
    node_import_image "$2" "$3"
    log "imported $2 as $3"
    ;;
  *)
    echo "usage: $0 up [--node]|down|restart etcd|apiserver|env|status|logs|build|import-image FILE REF" >&2
    exit 2
    ;;
esac
