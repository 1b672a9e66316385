// Render the mixin as files: jsonnet -S -m OUT mixin/render.jsonnet
// With the default _config this writes exactly the committed dashboards/*.json, rules/alerts.yml and
// rules/recording.yml (tests/test_mixin.py checks it byte for byte). Pass your own overrides with
//   jsonnet -S -m OUT --tla-code-file config=my-config.libsonnet mixin/render.jsonnet
// where my-config.libsonnet is an object such as { runbookURLPattern: 'https://...#%s' }.
local manifest = import 'lib/manifest.libsonnet';
local header = (import 'generated/rendering.json').ruleFileHeader;
// `jsonnet -S -m` ends every file with a newline of its own: hand it the text without its last one.
local file(text) = std.substr(text, 0, std.length(text) - 1);

function(config={})
  local mixin = (import 'mixin.libsonnet') + { _config+:: config };
  {
    [name]: file(manifest.json(mixin.grafanaDashboards[name]))
    for name in std.objectFields(mixin.grafanaDashboards)
  } + {
    'alerts.yml': file(header + manifest.yaml(mixin.prometheusAlerts)),
    'recording.yml': file(header + manifest.yaml(mixin.prometheusRules)),
  }
