{{/* Names, labels and the exporter container, shared by both modes. */}}

{{- define "ite.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ite.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "ite.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "ite.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Where the objects go: namespace.name in daemonset mode (as deploy/kubernetes puts them), else the
release's namespace (sidecar mode: the inference server's). */}}
{{- define "ite.namespace" -}}
{{- if and (eq .Values.mode "daemonset") .Values.namespace.name -}}
{{- .Values.namespace.name -}}
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* Helm's own bookkeeping labels. */}}
{{- define "ite.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ite.component" -}}
{{- if eq .Values.mode "daemonset" }}node{{ else }}sidecar{{ end -}}
{{- end -}}

{{/* Labels of the pods and of what selects them. */}}
{{- define "ite.selectorLabels" -}}
app.kubernetes.io/component: {{ include "ite.component" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/name: {{ include "ite.name" . }}
{{- end -}}

{{/* Labels of every object but the pods. */}}
{{- define "ite.labels" -}}
{{ include "ite.helmLabels" . }}
app.kubernetes.io/name: {{ include "ite.name" . }}
app.kubernetes.io/part-of: inference-throughput-exporter
{{- end -}}

{{/* Labels of the workload and its Service: the common ones and the component. */}}
{{- define "ite.workloadLabels" -}}
{{ include "ite.labels" . }}
app.kubernetes.io/component: {{ include "ite.component" . }}
{{- end -}}

{{- define "ite.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "ite.portName" -}}
{{- if eq .Values.mode "daemonset" }}metrics{{ else }}exporter{{ end -}}
{{- end -}}

{{- define "ite.webConfigured" -}}
{{- if or .Values.web.config .Values.web.existingSecret }}true{{ end -}}
{{- end -}}

{{- define "ite.credentialsSecret" -}}
{{- if .Values.existingCredentialsSecret }}{{ .Values.existingCredentialsSecret }}{{ else if .Values.credentials }}{{ include "ite.fullname" . }}-credentials{{ end -}}
{{- end -}}

{{- define "ite.configName" -}}
{{- if eq .Values.mode "daemonset" }}{{ include "ite.fullname" . }}{{ else }}{{ include "ite.fullname" . }}-exporter{{ end -}}
{{- end -}}

{{/* The exporter container: args, probes, resources, security and mounts, as deploy/kubernetes has them. */}}
{{- define "ite.exporterContainer" -}}
- name: exporter
  image: {{ include "ite.image" . }}
  {{- if ne .Values.image.pullPolicy "IfNotPresent" }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- end }}
  args:
    - --config.file=/etc/inference-throughput-exporter/config.yml
    - --web.listen-address=:{{ .Values.service.port }}
    {{- if include "ite.webConfigured" . }}
    - --web.config.file=/etc/inference-throughput-exporter/web/web-config.yml
    {{- end }}
    {{- range .Values.extraArgs }}
    - {{ . }}
    {{- end }}
  env:
    {{- if eq .Values.mode "sidecar" }}
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: POD_NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
    {{- end }}
    - name: NVIDIA_VISIBLE_DEVICES
      value: all
    - name: NVIDIA_DRIVER_CAPABILITIES
      value: utility
  ports:
    - name: {{ include "ite.portName" . }}
      containerPort: {{ .Values.service.port }}
      protocol: TCP
  readinessProbe:
    httpGet:
      path: /-/ready
      port: {{ include "ite.portName" . }}
      {{- if eq .Values.web.scheme "HTTPS" }}
      scheme: HTTPS
      {{- end }}
    periodSeconds: 10
    timeoutSeconds: 5
  livenessProbe:
    httpGet:
      path: /-/healthy
      port: {{ include "ite.portName" . }}
      {{- if eq .Values.web.scheme "HTTPS" }}
      scheme: HTTPS
      {{- end }}
    initialDelaySeconds: 10
    periodSeconds: 20
    timeoutSeconds: 5
    failureThreshold: 3
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    {{- toYaml (ternary .Values.daemonset.securityContext .Values.sidecar.securityContext (eq .Values.mode "daemonset")) | nindent 4 }}
  volumeMounts:
    - name: {{ if eq .Values.mode "daemonset" }}config{{ else }}exporter-config{{ end }}
      mountPath: /etc/inference-throughput-exporter
      readOnly: true
    {{- if and (eq .Values.mode "daemonset") .Values.daemonset.podResources }}
    - name: pod-resources
      mountPath: /var/lib/kubelet/pod-resources
      readOnly: true
    {{- end }}
    {{- if include "ite.webConfigured" . }}
    - name: web-config
      mountPath: /etc/inference-throughput-exporter/web
      readOnly: true
    {{- end }}
    {{- if .Values.web.tlsSecret }}
    - name: web-tls
      mountPath: /etc/inference-throughput-exporter/tls
      readOnly: true
    {{- end }}
    {{- if include "ite.credentialsSecret" . }}
    - name: credentials
      mountPath: /etc/inference-throughput-exporter/credentials
      readOnly: true
    {{- end }}
{{- end -}}

{{/* The exporter's volumes. */}}
{{- define "ite.exporterVolumes" -}}
- name: {{ if eq .Values.mode "daemonset" }}config{{ else }}exporter-config{{ end }}
  {{- if .Values.existingConfigSecret.name }}
  secret:
    secretName: {{ .Values.existingConfigSecret.name }}
    items:
      - key: {{ .Values.existingConfigSecret.key }}
        path: config.yml
  {{- else }}
  configMap:
    name: {{ include "ite.configName" . }}
  {{- end }}
{{- if and (eq .Values.mode "daemonset") .Values.daemonset.podResources }}
- name: pod-resources
  hostPath:
    path: /var/lib/kubelet/pod-resources
    type: Directory
{{- end }}
{{- if include "ite.webConfigured" . }}
- name: web-config
  secret:
    secretName: {{ .Values.web.existingSecret | default (printf "%s-web-config" (include "ite.fullname" .)) }}
{{- end }}
{{- if .Values.web.tlsSecret }}
- name: web-tls
  secret:
    secretName: {{ .Values.web.tlsSecret }}
{{- end }}
{{- if include "ite.credentialsSecret" . }}
- name: credentials
  secret:
    secretName: {{ include "ite.credentialsSecret" . }}
{{- end }}
{{- end -}}

{{/* Endpoint settings shared by the ServiceMonitor and the PodMonitor. */}}
{{- define "ite.endpoint" -}}
path: /metrics
interval: {{ .monitor.interval }}
scrapeTimeout: {{ .monitor.scrapeTimeout }}
{{- if eq .root.Values.web.scheme "HTTPS" }}
scheme: https
{{- end }}
{{- with .monitor.tlsConfig }}
tlsConfig:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .monitor.basicAuth }}
basicAuth:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
