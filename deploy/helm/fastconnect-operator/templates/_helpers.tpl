{{/* The chart name, or nameOverride. */}}
{{- define "fco.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every object: the release name, with the chart name appended unless the release
name already contains it. Cluster-wide objects (ClusterRole, ClusterRoleBinding) use it too, so
two releases never share one.
*/}}
{{- define "fco.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "fco.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable for the life of the release. */}}
{{- define "fco.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fco.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object; `helm uninstall` leaves nothing with these behind. */}}
{{- define "fco.labels" -}}
helm.sh/chart: {{ include "fco.chart" . }}
{{ include "fco.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: fastconnect-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "fco.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fco.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image: pinned by digest when image.digest is set (the tag is then ignored). */}}
{{- define "fco.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The ports the operator reaches Console Connect on, one per line: networkPolicy.consoleConnect.ports,
or the port of apiBaseUrl (the one it names, else 443 for https and 80 for http).
*/}}
{{- define "fco.consoleConnectPorts" -}}
{{- if .Values.networkPolicy.consoleConnect.ports }}
{{- range .Values.networkPolicy.consoleConnect.ports }}
{{ . }}
{{- end }}
{{- else }}
{{- $url := urlParse .Values.apiBaseUrl }}
{{- $port := regexFind ":[0-9]+$" $url.host | trimPrefix ":" }}
{{- if not $port }}
{{- $port = ternary "443" "80" (eq $url.scheme "https") }}
{{- end }}
{{ $port }}
{{- end }}
{{- end }}

{{/* "true" when leader election is on: forced, or `auto` with more than one replica. */}}
{{- define "fco.leaderElection" -}}
{{- $mode := .Values.leaderElection.enabled }}
{{- if kindIs "bool" $mode }}
{{- if $mode }}true{{ end }}
{{- else if gt (int .Values.replicas) 1 }}true
{{- end }}
{{- end }}

{{- define "fco.leaseName" -}}
{{- default (include "fco.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
The rules the operator needs in every namespace it watches (a Role there, or the ClusterRole when
it watches all namespaces). Nothing else: no list or watch of Secrets, no writes to them.
*/}}
{{- define "fco.watchRules" -}}
# Watch FastConnectConnections (list at start, then watch) and set/clear the finalizer with a
# merge patch of metadata.
- apiGroups: ["fastconnect.dev"]
  resources: ["fastconnectconnections"]
  verbs: ["get", "list", "watch", "patch"]
# Write the status (server-side apply of the status subresource).
- apiGroups: ["fastconnect.dev"]
  resources: ["fastconnectconnections/status"]
  verbs: ["get", "patch"]
# The right to manage the finalizer of these resources, which some clusters check on this
# subresource (the OwnerReferencesPermissionEnforcement admission plugin, e.g. OpenShift).
- apiGroups: ["fastconnect.dev"]
  resources: ["fastconnectconnections/finalizers"]
  verbs: ["update"]
# Record Events on the resources (the kube-runtime Recorder creates, then patches repeats).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# Read the API key and the Oracle OCID from the Secrets a resource names, in its own namespace.
# `get` by name: Secrets are never listed or watched, so the operator sees no other Secret.
# `patch`: while a connection exists, the API key Secret carries the finalizer
# fastconnect.dev/api-key-in-use, so that deleting the namespace cannot remove the key before
# the connection is disconnected. The operator patches only that finalizer (its own field
# manager) and never a Secret's data.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "patch"]
{{- end }}

{{/*
PromQL label matchers of this release's series: prometheusRule.selector, or the job and namespace
the chart's ServiceMonitor gives its targets (job: the Service's name).
*/}}
{{- define "fco.metricsSelector" -}}
{{- if .Values.prometheusRule.selector }}
{{- .Values.prometheusRule.selector }}
{{- else }}
{{- printf "job=%q,namespace=%q" (include "fco.fullname" .) .Release.Namespace }}
{{- end }}
{{- end }}

{{/* The labels of one alert: (list $ <alert values>). */}}
{{- define "fco.alertLabels" -}}
{{- $root := index . 0 }}
{{- $alert := index . 1 }}
{{- $labels := merge (dict "severity" $alert.severity) (deepCopy $root.Values.prometheusRule.alertLabels) }}
{{- toYaml $labels }}
{{- end }}

{{/* The runbook annotation of one alert: (list $ "AlertName"). */}}
{{- define "fco.runbook" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- with $root.Values.prometheusRule.runbookUrl -}}
runbook_url: {{ printf "%s#%s" . (lower $name) | quote }}
{{- else -}}
runbook: {{ printf "fastconnect-operator README, section Alerts, %s" $name | quote }}
{{- end }}
{{- end }}

{{/*
A Prometheus duration of s, m, h, d and w units (e.g. 24h, 1d12h) in seconds, for comparing
with a *_seconds metric.
*/}}
{{- define "fco.durationSeconds" -}}
{{- $units := dict "s" 1 "m" 60 "h" 3600 "d" 86400 "w" 604800 }}
{{- $total := 0 }}
{{- range regexFindAll "[0-9]+[smhdw]" . -1 }}
{{- $n := regexFind "^[0-9]+" . }}
{{- $total = add $total (mul (atoi $n) (get $units (trimPrefix $n .))) }}
{{- end }}
{{- $total }}
{{- end }}
