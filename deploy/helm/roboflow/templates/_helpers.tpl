{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "roboflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, plus the chart name unless it already contains it. */}}
{{- define "roboflow.fullname" -}}
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

{{- define "roboflow.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "roboflow.labels" -}}
helm.sh/chart: {{ include "roboflow.chart" . }}
{{ include "roboflow.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "roboflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "roboflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "roboflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "roboflow.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "roboflow.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The store URL, checked: required, and shared by every pod (so not sqlite). */}}
{{- define "roboflow.store" -}}
{{- $store := required "set store: the coordination store URL shared by every pod (etcd://HOST:2379 or tikv://PD:2379)" .Values.store }}
{{- if not (or (hasPrefix "etcd://" $store) (hasPrefix "tikv://" $store)) }}
{{- fail (printf "store must be an etcd:// or tikv:// URL that every pod reaches, got %q (sqlite:// is local to one pod)" $store) }}
{{- end }}
{{- $store }}
{{- end }}

{{/* The Secret with storage credentials, or "" when the pods get none. */}}
{{- define "roboflow.credentialsSecret" -}}
{{- if .Values.credentials.existingSecret }}
{{- .Values.credentials.existingSecret }}
{{- else if .Values.credentials.create }}
{{- printf "%s-credentials" (include "roboflow.fullname" .) }}
{{- end }}
{{- end }}

{{/*
terminationGracePeriodSeconds of a pod: the given value, raised to at least the shutdown grace
plus 5 s, so a worker has its grace to finish the unit and then time to give it back before the
kubelet kills it. Call with (dict "root" $ "seconds" N).
*/}}
{{- define "roboflow.terminationGracePeriod" -}}
{{- $grace := int (ceil (float64 (default 15 .root.Values.settings.shutdownGraceSecs))) }}
{{- max (int .seconds) (add $grace 5) }}
{{- end }}

{{/* envFrom, env and volumeMounts shared by every container. */}}
{{- define "roboflow.envFrom" -}}
- configMapRef:
    name: {{ include "roboflow.fullname" . }}
{{- with include "roboflow.credentialsSecret" . }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end }}

{{- define "roboflow.env" -}}
# the pod id in the store (heartbeats, unit owners): stable across container restarts
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: TMPDIR
  value: /tmp
# `roboflow run` serves /health/live, /health/ready, /health and /metrics here
- name: HEALTH_PORT
  value: {{ .Values.health.port | quote }}
{{- if .Values.etcd.tls.existingSecret }}
# TLS to etcd: the CA and this client's certificate, mounted from etcd.tls.existingSecret
- name: ROBOFLOW_ETCD_CA_PATH
  value: /etc/roboflow/etcd-tls/ca.crt
- name: ROBOFLOW_ETCD_CERT_PATH
  value: /etc/roboflow/etcd-tls/tls.crt
- name: ROBOFLOW_ETCD_KEY_PATH
  value: /etc/roboflow/etcd-tls/tls.key
{{- end }}
{{- with .Values.etcd.auth }}
{{- if or .user .passwordSecret }}
- name: ROBOFLOW_ETCD_USER
  value: {{ required "etcd.auth.user is required with etcd.auth.passwordSecret" .user | quote }}
- name: ROBOFLOW_ETCD_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "etcd.auth.passwordSecret is required with etcd.auth.user" .passwordSecret }}
      key: {{ .passwordKey }}
{{- end }}
{{- end }}
{{- end }}

{{/* volumeMounts and volumes of every pod besides /tmp: the etcd TLS files when given. */}}
{{- define "roboflow.storeMounts" -}}
{{- if .Values.etcd.tls.existingSecret }}
- name: etcd-tls
  mountPath: /etc/roboflow/etcd-tls
  readOnly: true
{{- end }}
{{- end }}

{{- define "roboflow.storeVolumes" -}}
{{- with .Values.etcd.tls.existingSecret }}
- name: etcd-tls
  secret:
    secretName: {{ . }}
    defaultMode: 0400
{{- end }}
{{- end }}

{{- define "roboflow.ports" -}}
ports:
  - name: health
    containerPort: {{ .Values.health.port }}
    protocol: TCP
{{- end }}

{{- define "roboflow.probes" -}}
{{- with .Values.readinessProbe }}
{{- if .enabled }}
# ready while the pod reaches its store (heartbeat written lately, store circuit closed)
readinessProbe:
  httpGet:
    path: /health/ready
    port: health
  initialDelaySeconds: {{ .initialDelaySeconds }}
  periodSeconds: {{ .periodSeconds }}
  timeoutSeconds: {{ .timeoutSeconds }}
  failureThreshold: {{ .failureThreshold }}
{{- end }}
{{- end }}
{{- with .Values.livenessProbe }}
{{- if .enabled }}
# live while every role thread of the pod runs (a store outage does not restart pods)
livenessProbe:
  httpGet:
    path: /health/live
    port: health
  initialDelaySeconds: {{ .initialDelaySeconds }}
  periodSeconds: {{ .periodSeconds }}
  timeoutSeconds: {{ .timeoutSeconds }}
  failureThreshold: {{ .failureThreshold }}
{{- end }}
{{- end }}
{{- end }}

{{/* The /tmp volume: the given volume source, else an emptyDir bounded by sizeLimit. */}}
{{- define "roboflow.tmpVolume" -}}
- name: tmp
{{- if .volume }}
  {{- toYaml .volume | nindent 2 }}
{{- else }}
  emptyDir:
    {{- with .sizeLimit }}
    sizeLimit: {{ . }}
    {{- else }}
    {}
    {{- end }}
{{- end }}
{{- end }}

{{- define "roboflow.scrapeAnnotations" -}}
{{- if .Values.metrics.scrapeAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.health.port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}
