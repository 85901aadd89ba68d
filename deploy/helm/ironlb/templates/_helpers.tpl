{{/*
Named templates. Only the template subset documented in deploy/README.md is used anywhere in this
chart: test/helm/render.ts renders it in the tests (there is no helm binary in CI).
*/}}

{{/* The `app` label value: "metallb" unless nameOverride is set. */}}
{{- define "ironlb.name" -}}
{{ .Values.nameOverride | default "metallb" }}
{{- end -}}

{{/* Prefix of object names: "" by default (MetalLB's plain-manifest names), else "<fullnameOverride>-". */}}
{{- define "ironlb.prefix" -}}
{{- if .Values.fullnameOverride -}}
{{ .Values.fullnameOverride }}-
{{- end -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "ironlb.labels" -}}
app: {{ include "ironlb.name" . }}
{{- end -}}

{{- define "ironlb.controllerServiceAccountName" -}}
{{- if .Values.controller.serviceAccount.name -}}
{{ .Values.controller.serviceAccount.name }}
{{- else -}}
{{ include "ironlb.prefix" . }}controller
{{- end -}}
{{- end -}}

{{- define "ironlb.speakerServiceAccountName" -}}
{{- if .Values.speaker.serviceAccount.name -}}
{{ .Values.speaker.serviceAccount.name }}
{{- else -}}
{{ include "ironlb.prefix" . }}speaker
{{- end -}}
{{- end -}}
