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

{{/* ---------------------------------------------------------------------------------------------------
     Session server (server.*) */}}

{{- define "ddcoterm.serverName" -}}
{{- printf "%s-server" (include "ddcoterm.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ddcoterm.serverImage" -}}
{{- printf "%s:%s" .Values.server.image.repository (default .Chart.AppVersion .Values.server.image.tag) -}}
{{- end -}}

{{- define "ddcoterm.serverServiceAccountName" -}}
{{- if .Values.server.serviceAccount.create -}}
{{- default (include "ddcoterm.serverName" .) .Values.server.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.server.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The in-cluster address of the server's Service (plain http inside the cluster). */}}
{{- define "ddcoterm.serverServiceUrl" -}}
{{- printf "http://%s.%s.svc:%d" (include "ddcoterm.serverName" .) .Release.Namespace (int .Values.server.service.port) -}}
{{- end -}}

{{/* --public-url: server.publicUrl, else the Ingress host (https with TLS), else the Service address. So the
     links the server prints open where reviewers are. */}}
{{- define "ddcoterm.serverPublicUrl" -}}
{{- $s := .Values.server -}}
{{- if $s.publicUrl -}}
{{- $s.publicUrl | trimSuffix "/" -}}
{{- else if and $s.ingress.enabled $s.ingress.host -}}
{{- printf "%s://%s" (ternary "https" "http" (not (empty $s.ingress.tlsSecret))) $s.ingress.host -}}
{{- else -}}
{{- include "ddcoterm.serverServiceUrl" . -}}
{{- end -}}
{{- end -}}

{{/* Refuses impossible server settings at render time, each with the value to change. */}}
{{- define "ddcoterm.serverChecks" -}}
{{- $s := .Values.server -}}
{{- if and (eq $s.mode "embedded") (gt (int $s.replicas) 1) -}}
{{- fail (printf "server.replicas=%d needs server.mode=scaleOut: the embedded backend (SQLite + a local directory on one volume) serves one replica only; set server.mode=scaleOut with server.scaleOut.existingSecret (PostgreSQL URL, S3 keys) and server.scaleOut.bucket" (int $s.replicas)) -}}
{{- end -}}
{{- if eq $s.mode "scaleOut" -}}
{{- if not $s.scaleOut.existingSecret -}}
{{- fail "server.mode=scaleOut needs server.scaleOut.existingSecret: a Secret with the PostgreSQL URL (key server.scaleOut.databaseUrlKey) and the S3 keys" -}}
{{- end -}}
{{- if not $s.scaleOut.bucket -}}
{{- fail "server.mode=scaleOut needs server.scaleOut.bucket: the S3 bucket every replica shares" -}}
{{- end -}}
{{- end -}}
{{- if and $s.ingress.enabled (not $s.ingress.host) -}}
{{- fail "server.ingress.enabled needs server.ingress.host: the host reviewers open (it becomes the public URL)" -}}
{{- end -}}
{{- if and $s.metrics.serviceMonitor.enabled (not $s.metrics.port) (not $s.metrics.serviceMonitor.tokenSecret) -}}
{{- fail "server.metrics.serviceMonitor needs server.metrics.port (the token-less metrics listener) or server.metrics.serviceMonitor.tokenSecret (an auditor token): /metrics on the API port answers 403 without a token" -}}
{{- end -}}
{{- if $s.test.enabled -}}
{{- if not $s.test.tokenSecret -}}
{{- fail "server.test.enabled needs server.test.tokenSecret: a Secret with a host token (server.test.hostTokenKey) and an auditor token (server.test.readerTokenKey)" -}}
{{- end -}}
{{- include "ddcoterm.requireHttps" (list (include "ddcoterm.serverTestUrl" .) "server.test.url") -}}
{{- end -}}
{{- end -}}

{{/* Where `helm test` uploads: server.test.url, else the public URL. */}}
{{- define "ddcoterm.serverTestUrl" -}}
{{- default (include "ddcoterm.serverPublicUrl" .) .Values.server.test.url | trimSuffix "/" -}}
{{- end -}}

{{/* (list URL KEY): fails unless URL is https:// (the client sends a host token only over TLS, plain http
     only to loopback, which no other pod is). */}}
{{- define "ddcoterm.requireHttps" -}}
{{- $url := index . 0 -}}
{{- if not (hasPrefix "https://" $url) -}}
{{- fail (printf "%s: the ddcoterm client uploads only over https (it refuses to send a host token in clear text to anything but loopback), and the server URL here is `%s`: enable server.ingress with server.ingress.tlsSecret, or set %s to an https URL" (index . 1) $url (index . 1)) -}}
{{- end -}}
{{- end -}}

{{- define "ddcoterm.serverLabels" -}}
{{ include "ddcoterm.labels" . }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "ddcoterm.serverSelectorLabels" -}}
{{ include "ddcoterm.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end -}}

{{/* ---------------------------------------------------------------------------------------------------
     Bastion agent (bastion.agent.*) */}}

{{/* The URL the bastion agent uploads to: bastion.agent.serverUrl, else the organisation layer's server.url
     (config.server.url), else the chart's server's public URL when server.enabled, else none. */}}
{{- define "ddcoterm.agentServerUrl" -}}
{{- $layerUrl := get (default (dict) (get .Values.config "server")) "url" -}}
{{- if .Values.bastion.agent.serverUrl -}}
{{- .Values.bastion.agent.serverUrl | trimSuffix "/" -}}
{{- else if $layerUrl -}}
{{- $layerUrl | trimSuffix "/" -}}
{{- else if .Values.server.enabled -}}
{{- include "ddcoterm.serverPublicUrl" . -}}
{{- end -}}
{{- end -}}

{{- define "ddcoterm.agentChecks" -}}
{{- $a := .Values.bastion.agent -}}
{{- if and .Values.bastion.enabled $a.enabled -}}
{{- $url := include "ddcoterm.agentServerUrl" . -}}
{{- if $url -}}
{{- include "ddcoterm.requireHttps" (list $url "bastion.agent.serverUrl") -}}
{{- if not $a.tokenSecret -}}
{{- fail (printf "bastion.agent.tokenSecret: the agent uploads to %s and needs a host token: create one with `ddcoterm-server token create <bastion> --role host` and put it in a Secret (key bastion.agent.tokenSecretKey)" $url) -}}
{{- end -}}
{{- end -}}
{{- if eq (int $a.runAsUser) (int .Values.bastion.podSecurityContext.runAsUser) -}}
{{- fail "bastion.agent.runAsUser must differ from bastion.podSecurityContext.runAsUser: the shell user must not own the agent's evidence" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Paths inside the bastion pod in agent mode. */}}
{{- define "ddcoterm.agentSocketDir" -}}/run/ddcoterm{{- end -}}
{{- define "ddcoterm.agentPrivateDir" -}}/run/ddcoterm-agent{{- end -}}
{{- define "ddcoterm.agentVolumeDir" -}}/var/spool/ddcoterm{{- end -}}

{{/* The bastion pod's system config in agent mode: the organisation layer plus `agent:` (bastion mode, the
     agent's paths and limits) and `server.url`. The node installer keeps the plain layer. */}}
{{- define "ddcoterm.bastionConfig" -}}
{{- $cfg := include "ddcoterm.systemConfig" . | fromYaml -}}
{{- $a := .Values.bastion.agent -}}
{{- $agent := dict "enabled" true "socket" (printf "%s/agent.sock" (include "ddcoterm.agentSocketDir" .)) "state_dir" (printf "%s/agent" (include "ddcoterm.agentVolumeDir" .)) "max_bytes" (int64 $a.maxBytes) "user_quota_bytes" (int64 $a.userQuotaBytes) "when_full" $a.whenFull -}}
{{- $url := include "ddcoterm.agentServerUrl" . -}}
{{- if $url -}}
{{- $_ := set $agent "credentials_file" (printf "%s/credentials.yaml" (include "ddcoterm.agentPrivateDir" .)) -}}
{{- $srv := deepCopy (default (dict) (get $cfg "server")) -}}
{{- $_ := set $srv "url" $url -}}
{{- $_ := set $cfg "server" $srv -}}
{{- end -}}
{{- $_ := set $cfg "agent" $agent -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The session server's private CA for the uploading clients (sessionServerCA): env, mount, volume. */}}
{{- define "ddcoterm.serverCAEnv" -}}
{{- if .Values.sessionServerCA.secret -}}
- name: SSL_CERT_FILE
  value: /etc/ddcoterm-server-ca/ca.crt
{{- end }}
{{- end -}}

{{- define "ddcoterm.serverCAMount" -}}
{{- if .Values.sessionServerCA.secret -}}
- name: server-ca
  mountPath: /etc/ddcoterm-server-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "ddcoterm.serverCAVolume" -}}
{{- if .Values.sessionServerCA.secret -}}
- name: server-ca
  secret:
    secretName: {{ .Values.sessionServerCA.secret }}
    defaultMode: 0444
    items:
      - key: {{ .Values.sessionServerCA.key }}
        path: ca.crt
{{- end }}
{{- end -}}
