{{- define "mcp-authz.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mcp-authz.fullname" -}}
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

{{- define "mcp-authz.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "mcp-authz.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "mcp-authz.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mcp-authz.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mcp-authz.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mcp-authz.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Where mounted files live. Not under /etc/mcp-authz: the config volume is mounted there. */}}
{{- define "mcp-authz.keysDir" -}}/var/lib/mcp-authz/keys{{- end }}
{{- define "mcp-authz.pinsDir" -}}/var/lib/mcp-authz/pins{{- end }}

{{/* "true" when a pins file is mounted (docs/pinning.md). */}}
{{- define "mcp-authz.pinsEnabled" -}}
{{- if or .Values.pins.existingConfigMap .Values.pins.content }}true{{- end }}
{{- end }}

{{- define "mcp-authz.pinsConfigMapName" -}}
{{- default (printf "%s-pins" (include "mcp-authz.fullname" .)) .Values.pins.existingConfigMap }}
{{- end }}
{{- define "mcp-authz.tlsDir" -}}/var/lib/mcp-authz/tls{{- end }}

{{/* What a port serves with the chart's TLS: config.tls.<port>, else mtls with a client CA, tls without (the HTTP port: off). "" without TLS. */}}
{{- define "mcp-authz.tlsMode" -}}
{{- $ctx := index . 0 }}{{- $port := index . 1 }}
{{- if $ctx.Values.tls.secretName }}
{{- $cfg := default dict (default dict $ctx.Values.config).tls }}
{{- $fallback := ternary "off" (ternary "mtls" "tls" (not (empty $ctx.Values.tls.clientCaKey))) (eq $port "http") }}
{{- default $fallback (get $cfg $port) }}
{{- end }}
{{- end }}
{{- define "mcp-authz.policyDir" -}}/var/lib/mcp-authz/policy{{- end }}
{{- define "mcp-authz.upstreamDir" -}}/var/run/secrets/mcp-authz/upstream{{- end }}

{{/*
Worker processes: one when the config turns on what only the deciding process serves on the
HTTP port (the approval page, the AuthZEN API, userConnections' /connect pages), else workers.
*/}}
{{- define "mcp-authz.workers" -}}
{{- $cfg := .Values.config | default dict -}}
{{- $single := or $cfg.approvals (and $cfg.authzen $cfg.authzen.enabled) -}}
{{- range ($cfg.endpoints | default list) -}}
{{- if and .upstream (eq (.upstream.mode | default "") "userConnections") -}}{{- $single = true -}}{{- end -}}
{{- end -}}
{{- if $single -}}1{{- else -}}{{ .Values.workers }}{{- end -}}
{{- end }}

{{- define "mcp-authz.secretFilesDir" -}}/var/run/secrets/mcp-authz/files{{- end }}

{{- define "mcp-authz.keysSecretName" -}}
{{- default (printf "%s-keys" (include "mcp-authz.fullname" .)) .Values.apiKeys.existingSecret }}
{{- end }}

{{/* "true" when an API key registry is mounted. */}}
{{- define "mcp-authz.keysEnabled" -}}
{{- if or .Values.apiKeys.existingSecret .Values.apiKeys.keys }}true{{- end }}
{{- end }}

{{/* "true" when the policy bundle comes from a ConfigMap or a volume rather than the image. */}}
{{- define "mcp-authz.policyMounted" -}}
{{- if or .Values.policy.configMap.bundleBase64 .Values.policy.configMap.existingName .Values.policy.existingVolume }}true{{- end }}
{{- end }}

{{- define "mcp-authz.policyConfigMapName" -}}
{{- default (printf "%s-policy" (include "mcp-authz.fullname" .)) .Values.policy.configMap.existingName }}
{{- end }}

{{/* The Secret holding the Redis URL, when Redis is configured: the user's, else the chart's. */}}
{{- define "mcp-authz.redisSecretName" -}}
{{- if .Values.redis.existingSecret }}{{ .Values.redis.existingSecret }}{{ else if .Values.redis.url }}{{ printf "%s-redis" (include "mcp-authz.fullname" .) }}{{ end }}
{{- end }}

{{- define "mcp-authz.redisSecretKey" -}}
{{- if .Values.redis.existingSecret }}{{ .Values.redis.existingSecretKey }}{{ else }}redis-url{{ end }}
{{- end }}

{{- define "mcp-authz.replicasAtLeast" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{/*
The service config as the pod reads it: the user's `config`, with `listen` from
containerPorts and the file paths of what the chart mounts.
*/}}
{{- define "mcp-authz.config" -}}
{{- $cfg := deepCopy (default dict .Values.config) }}
{{- $_ := set $cfg "listen" (dict "grpc" (printf "0.0.0.0:%d" (int .Values.containerPorts.grpc)) "http" (printf "0.0.0.0:%d" (int .Values.containerPorts.http))) }}
{{- if .Values.containerPorts.extAuthzHttp }}
{{- $_ := set $cfg.listen "extAuthzHttp" (printf "0.0.0.0:%d" (int .Values.containerPorts.extAuthzHttp)) }}
{{- end }}
{{- if include "mcp-authz.keysEnabled" . }}
{{- $apiKeys := default dict $cfg.apiKeys }}
{{- if not $apiKeys.file }}
{{- $_ := set $apiKeys "file" (printf "%s/%s" (include "mcp-authz.keysDir" .) .Values.apiKeys.secretKey) }}
{{- end }}
{{- $_ := set $cfg "apiKeys" $apiKeys }}
{{- end }}
{{- if include "mcp-authz.pinsEnabled" . }}
{{- $pins := default dict $cfg.pins }}
{{- if not $pins.file }}
{{- $_ := set $pins "file" (printf "%s/%s" (include "mcp-authz.pinsDir" .) .Values.pins.configMapKey) }}
{{- end }}
{{- $_ := set $cfg "pins" $pins }}
{{- end }}
{{- $policy := default dict $cfg.policy }}
{{- /* A bundle service (config.bundles) is the policy's one source: no local bundle then. */}}
{{- if not (or $policy.bundle $policy.rego $cfg.bundles) }}
{{- if include "mcp-authz.policyMounted" . }}
{{- $_ := set $policy "bundle" (printf "%s/%s" (include "mcp-authz.policyDir" .) .Values.policy.fileName) }}
{{- else }}
{{- $_ := set $policy "bundle" .Values.policy.imageBundle }}
{{- end }}
{{- end }}
{{- $_ := set $cfg "policy" $policy }}
{{- if .Values.tls.secretName }}
{{- $tls := default dict $cfg.tls }}
{{- $_ := set $tls "certFile" (printf "%s/%s" (include "mcp-authz.tlsDir" .) .Values.tls.certKey) }}
{{- $_ := set $tls "keyFile" (printf "%s/%s" (include "mcp-authz.tlsDir" .) .Values.tls.keyKey) }}
{{- if .Values.tls.clientCaKey }}
{{- $_ := set $tls "clientCaFile" (printf "%s/%s" (include "mcp-authz.tlsDir" .) .Values.tls.clientCaKey) }}
{{- end }}
{{- $_ := set $cfg "tls" $tls }}
{{- else if $cfg.tls }}
{{- fail "config.tls needs its certificate from a Secret: set tls.secretName (the chart mounts it and fills in the file paths)" }}
{{- end }}
{{- if .Values.postgres.passwordSecret }}
{{- $stores := default dict $cfg.stores }}
{{- $pg := default dict $stores.postgres }}
{{- $_ := set $pg "passwordFile" (printf "%s/%s" .Values.postgres.mountPath .Values.postgres.passwordSecretKey) }}
{{- $_ := set $stores "postgres" $pg }}
{{- $_ := set $cfg "stores" $stores }}
{{- end }}
{{- /* The Redis URL is handed over as MCP_REDIS_URL from a Secret, never written here. */}}
{{- toYaml $cfg }}
{{- end }}
