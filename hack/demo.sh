#!/usr/bin/env bash
# The demo (`make demo` / `make demo-down`): the operator ordering a FastConnect connection from
# a local Console Connect sandbox, installed with the Helm chart into a real local control plane.
#
#   up    build the two binaries (if needed), bring up the control plane (hack/testenv.sh up),
#         start the sandbox, `helm upgrade --install` the chart into fastconnect-system (watching
#         namespace `network`), run the operator out of cluster with the token of the chart's
#         ServiceAccount (so it has exactly the chart's RBAC), apply the samples in `network`
#         and follow the connection until it is Active. Running it again reuses what runs.
#   up --node  (make demo NODE=1) the same with a node (hack/testenv.sh up --node): the image is
#         built without a container engine (hack/build-image.sh) and imported into the node, and
#         the operator runs as the chart's pod, talking to the sandbox on the node's address.
#   down  stop the operator and the sandbox (by their recorded pids), uninstall the chart and
#         stop the control plane (hack/testenv.sh down).
#
# Without a node the control plane has no kubelet: the chart's Deployment is created but its pod
# never runs, and the operator runs on this machine instead, as the chart's ServiceAccount.
#
# State (pids, logs, the operator's kubeconfig): <testenv dir>/demo, i.e. .testenv/demo.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TESTENV="$ROOT/hack/testenv.sh"
STATE="${FCO_TESTENV_DIR:-$ROOT/.testenv}/demo"
CHART="$ROOT/deploy/helm/fastconnect-operator"
RELEASE=fastconnect-operator
RELEASE_NS=fastconnect-system
NS=network
SA="$RELEASE" # the chart's full name when the release is named like the chart
BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/debug"

log() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }
die() { printf 'demo: ERROR: %s\n' "$*" >&2; exit 1; }

# ---- processes we start: $STATE/<name>.pid and $STATE/<name>.exe ------------------------------

alive() { # name: the recorded pid runs the recorded binary
  local pid exe want
  pid="$(cat "$STATE/$1.pid" 2>/dev/null || true)"
  want="$(cat "$STATE/$1.exe" 2>/dev/null || true)"
  [ -n "$pid" ] && [ -n "$want" ] || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  [ "$exe" = "$want" ] || [ "$exe" = "$want (deleted)" ]
}

start_bg() { # name binary args... (environment as exported by the caller)
  local name=$1 bin=$2
  shift 2
  : >"$STATE/$name.log"
  setsid "$bin" "$@" >>"$STATE/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/$name.pid"
  readlink -f "$bin" >"$STATE/$name.exe"
}

stop_bg() { # name
  local name=$1 pid i
  pid="$(cat "$STATE/$name.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && alive "$name"; then
    note "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if alive "$name"; then
      note "$name did not stop on SIGTERM; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  elif [ -n "$pid" ]; then
    note "$name (pid $pid) is not running"
  fi
  rm -f "$STATE/$name.pid" "$STATE/$name.exe"
}

wait_until() { # description seconds process-name command...
  local what=$1 timeout=$2 name=$3 deadline
  shift 3
  deadline=$((SECONDS + timeout))
  until "$@"; do
    if ! alive "$name"; then
      tail -n 30 "$STATE/$name.log" >&2 || true
      die "$name exited while waiting for $what (log: $STATE/$name.log)"
    fi
    [ $SECONDS -lt $deadline ] || { tail -n 30 "$STATE/$name.log" >&2; die "timed out waiting for $what"; }
    sleep 0.2
  done
}

free_port() {
  local p i
  for i in $(seq 1 100); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
    : "$i"
  done
  die "no free port"
}

sandbox_url() { sed -n 's/^listening on \(http:[^ ]*\)$/\1/p' "$STATE/sandbox.log" | head -n1; }
sandbox_listening() { [ -n "$(sandbox_url)" ]; }
operator_ready() { curl -sf --max-time 2 "http://$(cat "$STATE/operator.listen")/readyz" >/dev/null 2>&1; }

# ---- up ---------------------------------------------------------------------------------------

cmd_up() {
  local started=$SECONDS node=""
  [ "${1:-}" = "--node" ] && node=1
  mkdir -p "$STATE"

  log "Building the operator and the sandbox (cargo build; quick when nothing changed)"
  (cd "$ROOT" && cargo build -p fastconnect-operator -p consoleconnect-sandbox)

  local listen_on=127.0.0.1 image_ref=""
  if [ -n "$node" ]; then
    log "Local control plane and a node (kubelet, containerd, kube-proxy): hack/testenv.sh up --node"
    "$TESTENV" up --node
    eval "$("$TESTENV" env)"
    listen_on=$FCO_TESTENV_NODE_IP
    log "The operator image, without a container engine (hack/build-image.sh), into the node"
    local out
    out="$("$ROOT/hack/build-image.sh")"
    image_ref="$(sed -n 2p <<<"$out")"
    "$TESTENV" import-image "$(sed -n 1p <<<"$out")" "$image_ref"
  else
    log "Local control plane (etcd, kube-apiserver, kube-controller-manager): hack/testenv.sh up"
    "$TESTENV" up
    eval "$("$TESTENV" env)"
  fi
  command -v helm >/dev/null 2>&1 || die "helm is not on PATH (hack/testenv.sh builds it)"

  log "Console Connect sandbox"
  local fresh_sandbox=0
  if alive sandbox && [ -n "$(sandbox_url)" ] && [[ "$(sandbox_url)" == "http://$listen_on:"* ]]; then
    note "already running (pid $(cat "$STATE/sandbox.pid"))"
  else
    start_bg sandbox "$BIN_DIR/consoleconnect-sandbox" --listen "$listen_on:0"
    wait_until "the sandbox to listen" 30 sandbox sandbox_listening
    fresh_sandbox=1
  fi
  local url
  url="$(sandbox_url)"
  note "$url (company acme, API key sandbox-api-key; CREATING 2s -> PENDING 5s -> ACTIVE)"

  log "Helm: install the chart as release $RELEASE in $RELEASE_NS, watching namespace $NS"
  kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  local in_pod=()
  [ -n "$node" ] && in_pod=(--set image.pullPolicy=Never --set "apiBaseUrl=$url/" --wait --timeout 3m)
  helm upgrade --install "$RELEASE" "$CHART" --namespace "$RELEASE_NS" --create-namespace \
    --set "watchNamespaces={$NS}" "${in_pod[@]}" >"$STATE/helm-notes.txt"
  kubectl get serviceaccount,deployment,service -n "$RELEASE_NS" -l "app.kubernetes.io/instance=$RELEASE"
  kubectl get role,rolebinding -n "$NS" -l "app.kubernetes.io/instance=$RELEASE"
  if [ -n "$node" ]; then
    stop_bg operator
    kubectl get pods -n "$RELEASE_NS" -l "app.kubernetes.io/instance=$RELEASE" -o wide
    note "the operator runs as the chart's pod, image $image_ref"
  else
    note "(no kubelet here: the Deployment's pod will not run; the operator runs on this machine)"
    run_operator_here "$url"
  fi

  if [ "$fresh_sandbox" -eq 1 ] && kubectl get fcc hk-oracle -n "$NS" >/dev/null 2>&1; then
    log "A connection from an earlier demo points at a sandbox that is gone: deleting it first"
    kubectl delete fcc hk-oracle -n "$NS" --timeout=60s
  fi

  log "Applying the samples in namespace $NS (deploy/samples/)"
  kubectl apply -n "$NS" -f "$ROOT/deploy/samples/secrets.yaml"
  kubectl apply -n "$NS" -f "$ROOT/deploy/samples/fastconnectconnection.yaml"
  kubectl get fcc -n "$NS"

  log "Following hk-oracle: kubectl get fcc -n $NS -w (until Ready, at most 120s)"
  timeout 130 kubectl get fcc -n "$NS" -w --no-headers &
  local watcher=$!
  local rc=0
  kubectl wait --for=condition=Ready fcc/hk-oracle -n "$NS" --timeout=120s >/dev/null || rc=$?
  kill "$watcher" 2>/dev/null || true
  wait "$watcher" 2>/dev/null || true
  echo
  kubectl get fcc -n "$NS"
  if [ "$rc" -ne 0 ]; then
    kubectl describe fcc hk-oracle -n "$NS" >&2 || true
    if [ -n "$node" ]; then
      kubectl logs -n "$RELEASE_NS" "deployment/$RELEASE" --tail=30 >&2 || true
    else
      tail -n 30 "$STATE/operator.log" >&2 || true
    fi
    die "hk-oracle did not become Ready"
  fi

  local metrics
  if [ -n "$node" ]; then
    metrics="$(kubectl get service "$RELEASE" -n "$RELEASE_NS" -o jsonpath='{.spec.clusterIP}'):8080"
  else
    metrics="$(cat "$STATE/operator.listen")"
  fi
  log "hk-oracle is Active ($((SECONDS - started))s). Explore:"
  explore "eval \"\$(hack/testenv.sh env)\"" "kubectl and helm for this control plane"
  explore "kubectl describe fcc hk-oracle -n $NS" "status, conditions, events"
  explore "kubectl get events -n $NS --field-selector involvedObject.name=hk-oracle" ""
  explore "kubectl get fcc hk-oracle -n $NS -o yaml" ""
  explore "kubectl delete fcc hk-oracle -n $NS" "disconnects the circuit in the sandbox"
  explore "curl -s http://$metrics/metrics" "operator metrics (also /healthz, /readyz)"
  explore "curl -s $url/_sandbox/connections" "what Console Connect (the sandbox) has"
  explore "curl -s $url/_sandbox/stats" "the requests the operator made"
  explore "helm status $RELEASE -n $RELEASE_NS" "the release and its notes"
  if [ -n "$node" ]; then
    explore "kubectl logs -n $RELEASE_NS deployment/$RELEASE" "the operator's log (its pod)"
    note "logs: $STATE/sandbox.log"
  else
    note "logs: $STATE/operator.log, $STATE/sandbox.log"
  fi
  note ""
  note "Stop everything: make demo-down"
}

run_operator_here() { # sandbox-url
  local url=$1
  log "Operator, out of cluster, as ServiceAccount $RELEASE_NS/$SA (kubectl create token)"
  local server
  server="$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')"
  # Reused only if it still talks to this control plane and runs the binary just built.
  if alive operator && operator_ready && [ "$(cat "$STATE/operator.server" 2>/dev/null)" = "$server" ] &&
    [ ! "$BIN_DIR/fastconnect-operator" -nt "$STATE/operator.pid" ]; then
    note "already running (pid $(cat "$STATE/operator.pid"), metrics on $(cat "$STATE/operator.listen"))"
  else
    stop_bg operator
    write_operator_kubeconfig
    local listen
    listen="127.0.0.1:$(free_port)"
    echo "$listen" >"$STATE/operator.listen"
    echo "$server" >"$STATE/operator.server"
    KUBECONFIG="$STATE/operator.kubeconfig" FCO_API_BASE_URL="$url" FCO_NAMESPACES="$NS" \
      FCO_LISTEN="$listen" FCO_POLL_PROGRESS=1s RUST_LOG="${RUST_LOG:-info}" \
      start_bg operator "$BIN_DIR/fastconnect-operator"
    wait_until "the operator to be ready" 60 operator operator_ready
    note "running (pid $(cat "$STATE/operator.pid")), log $STATE/operator.log"
  fi

}

explore() { # command comment
  if [ -n "$2" ]; then
    printf '    %-66s # %s\n' "$1" "$2" >&2
  else
    printf '    %s\n' "$1" >&2
  fi
}

write_operator_kubeconfig() {
  local token server ca
  token="$(kubectl create token "$SA" -n "$RELEASE_NS" --duration=24h)"
  server="$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')"
  ca="$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')"
  (
    umask 077
    cat >"$STATE/operator.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: demo
  cluster:
    server: $server
    certificate-authority-data: $ca
users:
- name: $SA
  user:
    token: $token
contexts:
- name: demo
  context: {cluster: demo, user: $SA}
current-context: demo
EOF
  )
}

# ---- down -------------------------------------------------------------------------------------

cmd_down() {
  log "Stopping the demo"
  stop_bg operator
  stop_bg sandbox
  if "$TESTENV" status >/dev/null 2>&1; then
    eval "$("$TESTENV" env)"
    if helm status "$RELEASE" -n "$RELEASE_NS" >/dev/null 2>&1; then
      note "helm uninstall $RELEASE (the CRD stays: Helm never deletes CRDs)"
      helm uninstall "$RELEASE" -n "$RELEASE_NS" >/dev/null
    fi
  fi
  "$TESTENV" down
  rm -f "$STATE/operator.kubeconfig" "$STATE/operator.listen" "$STATE/operator.server"
  note "done (logs kept in $STATE)"
}

case "${1:-}" in
  up) cmd_up "${2:-}" ;;
  down) cmd_down ;;
  *)
    echo "usage: $0 up [--node]|down" >&2
    exit 2
    ;;
esac
