// Settings of the mixin. Override them as with any monitoring mixin:
//   (import 'inference-throughput-exporter-mixin/mixin.libsonnet') + {
//     _config+:: { runbookURLPattern: 'https://git.example.com/sre/runbooks/inference.md#%s' },
//   }
// Thresholds and windows of the rules are not here: they are set in rules/settings.yml, from which
// `make dashboards` generates generated/*.json (see README.md).
{
  _config+:: {
    // Each alert's runbook_url: %s is the alert name in lower case. The default is the project's
    // docs/runbooks.md (or rules/settings.yml's runbook_url) when the mixin was generated.
    runbookURLPattern: (import 'generated/config.json').runbookURLPattern,
  },
}
