{{/* The release's base name, at most 63 characters less room for suffixes. */}}
{{- define "hydrant.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "hydrant.webhook" -}}{{ include "hydrant.fullname" . }}-webhook{{- end -}}
{{- define "hydrant.controller" -}}{{ include "hydrant.fullname" . }}-controller{{- end -}}
{{- define "hydrant.tlsSecret" -}}
{{- if eq .Values.certificates.mode "secret" -}}{{ .Values.certificates.secret.name }}{{- else -}}{{ include "hydrant.webhook" . }}-tls{{- end -}}
{{- end -}}

{{- define "hydrant.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{- define "hydrant.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "hydrant.webhookSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "hydrant.controllerSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{/* The hardened container securityContext every hydrant container runs with. */}}
{{- define "hydrant.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The pod securityContext of hydrant's own pods. Under agent.runAs.omit no fixed ids:
OpenShift's restricted SCC assigns them and refuses fixed ones; the image's user is
non-root (65532) either way. */}}
{{- define "hydrant.podSecurityContext" -}}
runAsNonRoot: true
{{- if not .Values.agent.runAs.omit }}
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
{{- end }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* A template's YAML with a values map set over it, key by key: (list $ "template" $overrides). */}}
{{- define "hydrant.merged" -}}
{{- $root := index . 0 -}}
{{- $base := include (index . 1) $root | fromYaml -}}
{{- toYaml (mergeOverwrite $base (deepCopy (index . 2))) -}}
{{- end -}}
