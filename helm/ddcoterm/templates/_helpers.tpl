{{/* Chart name, truncated to the 63 characters Kubernetes allows. */}}
{{- define "ddcoterm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name. */}}
{{- define "ddcoterm.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ddcoterm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "ddcoterm.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "ddcoterm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ddcoterm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ddcoterm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ddcoterm.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ddcoterm.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "ddcoterm.secretName" -}}
{{- default (printf "%s-keys" (include "ddcoterm.fullname" .)) .Values.datadog.existingSecret -}}
{{- end -}}

{{/* True when some API key source exists. */}}
{{- define "ddcoterm.hasKeys" -}}
{{- if or .Values.datadog.existingSecret .Values.datadog.apiKey -}}true{{- end -}}
{{- end -}}

{{/* The system config: .Values.config with bundles.trustedKeys appended to bundles.trusted_keys, and
     shims.system_dir set to the chart's shim directory when that is not the default (ssh-login puts it on
     PATH for remote commands). */}}
{{- define "ddcoterm.systemConfig" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $shimDir := .Values.nodeInstaller.hostPaths.shimDir -}}
{{- if and (ne $shimDir "/usr/local/lib/ddcoterm/overrides") (not (get (default (dict) (get $cfg "shims")) "system_dir")) -}}
{{- $s := deepCopy (default (dict) (get $cfg "shims")) -}}
{{- $_ := set $s "system_dir" $shimDir -}}
{{- $_ := set $cfg "shims" $s -}}
{{- end -}}
{{- if .Values.bundles.trustedKeys -}}
{{- $b := deepCopy (default (dict) (get $cfg "bundles")) -}}
{{- $keys := concat (default (list) (get $b "trusted_keys")) .Values.bundles.trustedKeys | uniq -}}
{{- $_ := set $b "trusted_keys" $keys -}}
{{- $_ := set $cfg "bundles" $b -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Env with the Datadog site and keys (keys from the Secret, the app key optional). */}}
{{- define "ddcoterm.datadogEnv" -}}
- name: DD_SITE
  value: {{ .Values.datadog.site | quote }}
{{- if include "ddcoterm.hasKeys" . }}
- name: DD_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "ddcoterm.secretName" . }}
      key: {{ .Values.datadog.apiKeySecretKey }}
- name: DD_APP_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "ddcoterm.secretName" . }}
      key: {{ .Values.datadog.appKeySecretKey }}
      optional: true
{{- end }}
{{- end -}}

{{/* Volumes holding the chart's config and bundles ConfigMaps. */}}
{{- define "ddcoterm.sourceVolumes" -}}
- name: src-config
  configMap:
    name: {{ include "ddcoterm.fullname" . }}-config
- name: src-bundles
  configMap:
    name: {{ include "ddcoterm.fullname" . }}-bundles
{{- end -}}
