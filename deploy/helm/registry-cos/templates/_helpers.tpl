{{/* The release's objects are named after the release (and the chart when they differ). */}}
{{- define "registry-cos.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "registry-cos.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "registry-cos.labels" -}}
{{ include "registry-cos.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "registry-cos.serviceAccountName" -}}
{{- if or .Values.serviceAccount.create (eq .Values.credentials.mode "podIdentity") -}}
{{- .Values.serviceAccount.name | default (include "registry-cos.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding secretid/secretkey, for modes secret and existingSecret. */}}
{{- define "registry-cos.credentialsSecret" -}}
{{- if eq .Values.credentials.mode "existingSecret" -}}
{{- required "credentials.existingSecret: name the Secret with keys secretid and secretkey" .Values.credentials.existingSecret -}}
{{- else -}}
{{- printf "%s-credentials" (include "registry-cos.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "registry-cos.httpSecretName" -}}
{{- .Values.httpSecret.existingSecret | default (printf "%s-http" (include "registry-cos.fullname" .)) -}}
{{- end -}}

{{/* The generated HTTP secret, once per render (secret.yaml stores it, the
pod template carries its checksum): the last install's when lookup can read
it (helm install/upgrade), else a new one (helm template). */}}
{{- define "registry-cos.httpSecretValue" -}}
{{- if not (hasKey .Values.httpSecret "resolved") -}}
{{- $value := .Values.httpSecret.value -}}
{{- if not $value -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "registry-cos.httpSecretName" .) -}}
{{- if and $existing $existing.data (index $existing.data "http-secret") -}}
{{- $value = index $existing.data "http-secret" | b64dec -}}
{{- else -}}
{{- $value = randAlphaNum 48 -}}
{{- end -}}
{{- end -}}
{{- $_ := set .Values.httpSecret "resolved" $value -}}
{{- end -}}
{{- .Values.httpSecret.resolved -}}
{{- end -}}

{{/* The registry configuration; secrets come from the environment. Every log
line is JSON: the plain-text access log is off, as the JSON "response
completed" entry of each request says the same. The
registry listens on 5000 and its debug listener on 5001 whatever ports the
Services publish: uid 10001 without capabilities cannot bind below 1024. */}}
{{- define "registry-cos.config" -}}
{{- $cos := dict "bucket" (required "cos.bucket: the bucket name, <name>-<APPID>" .Values.cos.bucket) -}}
{{- with .Values.cos.region }}{{ $_ := set $cos "region" . }}{{ end -}}
{{- with .Values.cos.rootdirectory }}{{ $_ := set $cos "rootdirectory" . }}{{ end -}}
{{- with .Values.cos.endpoint }}{{ $_ := set $cos "endpoint" . }}{{ end -}}
{{- if eq .Values.credentials.mode "cvmRole" }}{{ $_ := set $cos "cvmrole" (required "credentials.cvmRole: the CAM role of the nodes" .Values.credentials.cvmRole) }}{{ end -}}
{{- $cos = merge (deepCopy .Values.cos.parameters) $cos -}}
{{- $cache := ternary "redis" "inmemory" .Values.redis.enabled -}}
{{- $http := dict "addr" ":5000" "draintimeout" .Values.drainTimeout "headers" (dict "X-Content-Type-Options" (list "nosniff")) -}}
{{- if .Values.metrics.enabled -}}
{{- $_ := set $http "debug" (dict "addr" ":5001" "prometheus" (dict "enabled" true "path" "/metrics")) -}}
{{- end -}}
{{- $config := dict
  "version" "0.1"
  "log" (dict "level" .Values.registry.logLevel "formatter" "json" "fields" (dict "service" "registry") "accesslog" (dict "disabled" true))
  "http" $http
  "storage" (dict
    "cos" $cos
    "delete" (dict "enabled" .Values.registry.deleteEnabled)
    "redirect" (dict "disable" (not .Values.registry.redirect))
    "cache" (dict "blobdescriptor" $cache))
  "health" (dict "storagedriver" (dict "enabled" true "interval" "10s" "threshold" 3))
-}}
{{- if .Values.redis.enabled -}}
{{- $_ := set $config "redis" (dict "addrs" (list (required "redis.addr: host:port of the Redis server" .Values.redis.addr)) "db" (int .Values.redis.db) "dialtimeout" "100ms" "readtimeout" "100ms" "writetimeout" "100ms") -}}
{{- end -}}
{{- $config = mergeOverwrite $config (deepCopy .Values.registry.config) -}}
{{- toYaml $config -}}
{{- end -}}
