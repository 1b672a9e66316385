// Write JSON and YAML in exactly the style of the Python generators, so that rendering the mixin
// gives the committed files byte for byte (tests/test_mixin.py checks it):
//   json(value)  is Python's json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
//                (dashboards/build.py);
//   yaml(value)  is rules/emit.py's dump(value): keys in keyOrder first, sequences at their
//                mapping's indent, plain identifiers and durations, JSON-quoted strings otherwise,
//                literal blocks for multi-line strings.
local keyOrder = [
  'name', 'interval', 'rules', 'record', 'alert', 'expr', 'for',
  'labels', 'annotations', 'summary', 'description', 'runbook_url',
];
local reserved = ['y', 'n', 'yes', 'no', 'on', 'off', 'true', 'false', 'null'];
local charset(chars) = { [c]: true for c in std.stringChars(chars) };
local letters = charset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_');
local digits = charset('0123456789');
local identifierChars = letters + digits + charset('.:/-');
local units = charset('smhdwy');

local has(set, c) = std.objectHas(set, c);

// Shortest decimal that reads back as x (what Python's repr gives for ordinary magnitudes).
local decimal(x) =
  local go(places) =
    local scale = std.pow(10, places);
    local scaled = std.floor(std.abs(x) * scale + 0.5);
    if scaled / scale == std.abs(x) || places >= 17 then
      local text = std.toString(scaled);
      local padded = std.repeat('0', std.max(0, places + 1 - std.length(text))) + text;
      local cut = std.length(padded) - places;
      (if x < 0 then '-' else '') + padded[:cut] + '.' + padded[cut:]
    else go(places + 1);
  go(1);

local number(x) = if x == std.floor(x) then std.toString(x) else decimal(x);

local scalarJson(v) =
  if v == null then 'null'
  else if std.isBoolean(v) then (if v then 'true' else 'false')
  else if std.isNumber(v) then number(v)
  else std.escapeStringJson(v);

local json(v, pad) =
  if std.isObject(v) then
    if std.length(std.objectFields(v)) == 0 then '{}'
    else '{\n' + std.join(',\n', [
      pad + '  ' + std.escapeStringJson(k) + ': ' + json(v[k], pad + '  ')
      for k in std.objectFields(v)
    ]) + '\n' + pad + '}'
  else if std.isArray(v) then
    if std.length(v) == 0 then '[]'
    else '[\n' + std.join(',\n', [pad + '  ' + json(item, pad + '  ') for item in v]) + '\n' + pad + ']'
  else scalarJson(v);

// YAML

local isIdentifier(s) =
  std.length(s) > 0 && has(letters, s[0])
  && std.length([c for c in std.stringChars(s) if !has(identifierChars, c)]) == 0;

// ([0-9]+(ms|s|m|h|d|w|y))+
local isDuration(s) =
  local n = std.length(s);
  local skip(i) = if i < n && has(digits, s[i]) then skip(i + 1) else i;
  local from(i) =
    local j = skip(i);
    if j == i || j >= n then false
    else if j + 2 <= n && s[j:j + 2] == 'ms' then j + 2 == n || from(j + 2)
    else if has(units, s[j]) then j + 1 == n || from(j + 1)
    else false;
  from(0);

local isPlain(s) = (isIdentifier(s) || isDuration(s)) && !std.member(reserved, std.asciiLower(s));

local orderedKeys(o) =
  [k for k in keyOrder if std.objectHas(o, k)]
  + std.sort([k for k in std.objectFields(o) if !std.member(keyOrder, k)]);

local isEmpty(v) = (std.isObject(v) && std.length(std.objectFields(v)) == 0) || (std.isArray(v) && std.length(v) == 0);

local yamlScalar(v) =
  if std.isString(v) then (if isPlain(v) then v else std.escapeStringJson(v))
  else if isEmpty(v) then (if std.isObject(v) then '{}' else '[]')
  else scalarJson(v);

local isBlock(v) = std.isString(v) && std.length(std.split(v, '\n')) > 1;

local block(text, pad) =
  local body = if std.endsWith(text, '\n') then text[:std.length(text) - 1] else text;
  [if line == '' then '' else pad + line for line in std.split(body, '\n')];

// mapping, entry and sequence call each other: one local binds all three.
local mapping(o, pad) = std.flattenArrays([entry(pad + k + ':', o[k], pad, pad + '  ') for k in orderedKeys(o)]),
      entry(head, v, pad, nested) =
  if std.isObject(v) && !isEmpty(v) then [head] + mapping(v, nested)
  else if std.isArray(v) && !isEmpty(v) then [head] + sequence(v, pad)
  else if isBlock(v) then [head + ' ' + (if std.endsWith(v, '\n') then '|' else '|-')] + block(v, nested)
  else [head + ' ' + yamlScalar(v)],
      sequence(items, pad) = std.flattenArrays([
  if std.isObject(item) && !isEmpty(item) then
    local lines = mapping(item, pad + '  ');
    [pad + '- ' + lines[0][std.length(pad) + 2:]] + lines[1:]
  else entry(pad + '-', item, pad + '  ', pad + '  ')
  for item in items
]);

{
  json(value):: json(value, '') + '\n',
  yaml(value):: std.join('', [line + '\n' for line in mapping(value, '')]),
}
