{{/*
Name of the chart, overridable.
*/}}
{{- define "quiver.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the operator's objects: `<release>-quiver-operator`, or just the
release name when it already contains the chart name.
*/}}
{{- define "quiver.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s-operator" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Labels that select the operator pods. `app.kubernetes.io/name: quiver-operator`
is fixed: the NetworkPolicy of every DataCluster lets pods with this label reach
the workers (the operator reads their stats).
*/}}
{{- define "quiver.selectorLabels" -}}
app.kubernetes.io/name: quiver-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of every object of the chart.
*/}}
{{- define "quiver.labels" -}}
{{ include "quiver.selectorLabels" . }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: quiver
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The operator's ServiceAccount name.
*/}}
{{- define "quiver.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "quiver.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference: `repository:tag`, the tag defaulting to the appVersion.
*/}}
{{- define "quiver.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Worker and dashboard images of managed clusters.
*/}}
{{- define "quiver.workerImage" -}}
{{- default (printf "ghcr.io/quiver-dev/quiver-worker:%s" .Chart.AppVersion) .Values.clusterDefaults.workerImage }}
{{- end }}
{{- define "quiver.dashboardImage" -}}
{{- default (printf "ghcr.io/quiver-dev/quiver-dashboard:%s" .Chart.AppVersion) .Values.clusterDefaults.dashboardImage }}
{{- end }}

{{/*
Name of the leader-election Lease.
*/}}
{{- define "quiver.leaseName" -}}
{{- .Values.leaderElection.leaseName }}
{{- end }}
