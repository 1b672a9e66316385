// The inference-throughput-exporter mixin: its Grafana dashboards, Prometheus alerts and recording
// rules, in the monitoring-mixins layout (grafanaDashboards, prometheusAlerts, prometheusRules).
// The data is generated (generated/, from dashboards/*.py and rules/*.py); this file only builds
// each alert's runbook_url from _config.runbookURLPattern.
local alerts = import 'generated/alerts.json';
local recording = import 'generated/recording.json';

local withRunbook(pattern, rule) =
  if std.objectHas(rule, 'alert') then
    rule { annotations+: { runbook_url: std.format(pattern, std.asciiLower(rule.alert)) } }
  else rule;

(import 'config.libsonnet') + {
  grafanaDashboards+:: import 'generated/dashboards.libsonnet',

  prometheusAlerts+:: {
    groups+: [
      group { rules: [withRunbook($._config.runbookURLPattern, rule) for rule in group.rules] }
      for group in alerts.groups
    ],
  },

  prometheusRules+:: {
    groups+: recording.groups,
  },
}
