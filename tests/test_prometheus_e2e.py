"""The dashboards and rules against a real Prometheus that scrapes the real exporter.

One Prometheus (scrape and rule interval 1 s, the committed rule files loaded) scrapes:

- three demo exporters (seeds 1, 2, 3: each 10 simulated H100s, a vLLM and an SGLang server, a
  prefill/decode deployment behind a Dynamo frontend, all named alike across the three, and a GPU no
  server claims), for the fleet;
- GPU-only exporters on the ``mig`` scenario (with GPM profiling on) and the ``xid`` scenario, for
  the MIG, GPM and XID panels;
- an exporter whose one server is unreachable and whose NVML is missing, and a target where nothing
  listens, so the alerts about them can be seen matching the real series.

Every panel query of every committed dashboard (variables resolved through their own queries) and
every recording rule must return data; every rule must evaluate without error.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool
from tests.helpers import ExporterProcess, free_port, run_exporter, wait_for
from tests.prometheus_stack import PrometheusProcess, QueryError, Series, run_prometheus, scrape_config

pytestmark = [pytest.mark.e2e, pytest.mark.prometheus, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
RULE_FILES = [ROOT / "rules" / "recording.yml", ROOT / "rules" / "alerts.yml"]
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
JOB = yaml.safe_load((ROOT / "rules" / "settings.yml").read_text(encoding="utf-8"))["exporter_job"]
RATE_INTERVAL = "15s"
"""What ``$__rate_interval`` stands for here: several 1 s scrapes, like Grafana's 4 × scrape interval."""
RANGE = "60s"
"""What ``$__range`` stands for here: a dashboard time range that the test's data covers."""
DATA_DEADLINE = 180.0
"""Seconds to wait for data: rule groups run every 30 s, and rates need a few scrapes."""


@dataclass
class Stack:
    """The running Prometheus and what it scrapes."""

    prometheus: PrometheusProcess
    demos: list[ExporterProcess]
    broken: ExporterProcess
    dead_target: str


def _broken_config(tmp_path: Path) -> Path:
    path = tmp_path / "unreachable-server.yml"
    path.write_text(
        "poll_interval: 1s\nrate_window: 5s\nservers:\n"
        f"  - name: unreachable\n    url: http://127.0.0.1:{free_port()}/metrics\n    timeout: 500ms\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_binary = require_tool("prometheus", "apt-get install prometheus")
    tmp = tmp_path_factory.mktemp("prometheus-stack")
    with contextlib.ExitStack() as exits:
        demos = [exits.enter_context(run_exporter(["demo", "--seed", str(seed)], tmp)) for seed in (1, 2, 3)]
        gpm = tmp / "gpm.yml"
        gpm.write_text("gpu:\n  gpm: true\n", encoding="utf-8")
        gpu_only = [
            exits.enter_context(run_exporter(["--gpu.simulate", "mig", "--config.file", str(gpm)], tmp)),
            exits.enter_context(run_exporter(["--gpu.simulate", "xid"], tmp)),
        ]
        broken = exits.enter_context(
            run_exporter(["--gpu.simulate", "none", "--config.file", str(_broken_config(tmp))], tmp)
        )
        dead_target = f"127.0.0.1:{free_port()}"
        targets = [f"127.0.0.1:{e.port}" for e in (*demos, *gpu_only, broken)] + [dead_target]
        config = scrape_config(JOB, targets, RULE_FILES)
        prometheus = exits.enter_context(run_prometheus(prometheus_binary, config, tmp))
        yield Stack(prometheus, demos, broken, dead_target)


# Dashboards


def _regex(values: list[str]) -> str:
    """Several values as one regex alternative, escaped for a PromQL string as Grafana escapes them."""
    escaped = [re.sub(r"([\\.^$*+?()\[\]{}|])", r"\\\\\1", value) for value in values]
    return "(" + "|".join(escaped) + ")"


def _substitute(text: str, values: dict[str, str]) -> str:
    text = text.replace("$__rate_interval", RATE_INTERVAL).replace("$__range", RANGE)
    return re.sub(r"\$(\w+)", lambda m: values[m.group(1)], text)


def resolve_variables(prometheus: PrometheusProcess, board: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Each query variable as "All" of what its own query returns, in chain order; and those without values."""
    values: dict[str, str] = {}
    empty: list[str] = []
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"])
        assert match, variable["query"]
        found = prometheus.label_values(match.group(2), _substitute(match.group(1), values))
        if not found:
            empty.append(f"{board['uid']}: variable {variable['name']} has no values ({variable['query']})")
        values[variable["name"]] = _regex(found)
    return values, empty


def panel_queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(panel title, expr)`` of every query of every panel."""
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def _missing_data(prometheus: PrometheusProcess) -> list[str]:
    missing = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        values, empty = resolve_variables(prometheus, board)
        missing += empty
        for title, expr in panel_queries(board):
            query = _substitute(expr, values)
            if not empty and not prometheus.query(query):
                missing.append(f"{board['uid']} / {title}: {query}")
    return missing


def _eventually_empty(check: Callable[[], list[str]], what: str) -> None:
    """Poll ``check`` until it finds no problems, then fail listing those still left at the deadline.

    A query that Prometheus rejects raises at once: that is a bug, not data still to come.
    """
    deadline = time.monotonic() + DATA_DEADLINE
    while (left := check()) and time.monotonic() < deadline:
        time.sleep(2.0)
    assert not left, f"{what}: {len(left)} left after {DATA_DEADLINE:.0f}s\n" + "\n".join(left)


def test_every_dashboard_panel_query_returns_data_from_the_real_exporter(stack: Stack) -> None:
    assert len(DASHBOARDS) >= 3
    _eventually_empty(lambda: _missing_data(stack.prometheus), "panel queries without data")


# Rules


def _rules(kind: str) -> list[dict[str, Any]]:
    """Every ``record`` or every ``alert`` rule of the rule files."""
    groups = [g for path in RULE_FILES for g in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]]
    return [rule for group in groups for rule in group["rules"] if kind in rule]


def test_every_recording_rule_returns_data(stack: Stack) -> None:
    names = [rule["record"] for rule in _rules("record")]
    _eventually_empty(
        lambda: [name for name in names if not stack.prometheus.query(name)], "recording rules without data"
    )


def _unhealthy_rules(prometheus: PrometheusProcess) -> list[str]:
    rules = [rule for group in prometheus.rule_groups() for rule in group["rules"]]
    assert len(rules) == len(_rules("record")) + len(_rules("alert"))
    return [f"{r['name']}: {r['health']} {r.get('lastError', '')}" for r in rules if r["health"] != "ok"]


def test_every_rule_evaluates_without_error(stack: Stack) -> None:
    _eventually_empty(lambda: _unhealthy_rules(stack.prometheus), "rules not evaluated cleanly")


def _alert_keys(prometheus: PrometheusProcess) -> set[tuple[str, str]]:
    keys = set()
    for alert in prometheus.alerts():
        labels = alert["labels"]
        detail = labels.get("server") or labels.get("xid") or labels.get("metric") or labels.get("instance", "")
        keys.add((labels["alertname"], detail))
    return keys


def test_alerts_match_the_series_of_the_real_exporters(stack: Stack) -> None:
    broken = f"127.0.0.1:{stack.broken.port}"
    expected = {
        ("InferenceServerDown", "unreachable"),
        ("InferenceExporterNvmlDown", broken),
        ("InferenceExporterDown", stack.dead_target),
        ("InferenceGpuXidErrors", "48"),
        ("InferenceGpuXidErrors", "31"),
    }
    wait_for(lambda: expected <= _alert_keys(stack.prometheus), DATA_DEADLINE, 2.0, "alerts on the broken parts")
    unexpected = _alert_keys(stack.prometheus) - expected
    assert not unexpected, f"alerts on healthy parts: {unexpected}"
    severities = {
        a["labels"]["xid"]: a["labels"]["severity"] for a in stack.prometheus.alerts() if "xid" in a["labels"]
    }
    assert severities == {"48": "critical", "31": "warning"}


# Fleet


def _at(prometheus: PrometheusProcess, expr: str, at: float) -> list[Series]:
    return prometheus.query(expr, at)


def _value(series: Series) -> float:
    return float(series["value"][1])


def _by(series: list[Series], *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(s["metric"][label] for label in labels): _value(s) for s in series}


def _sum_by_model(series: list[Series]) -> dict[str, float]:
    sums: dict[str, float] = defaultdict(float)
    for s in series:
        sums[s["metric"]["model"]] += _value(s)
    return dict(sums)


@dataclass
class Parts:
    """Each exporter's own series at one moment, added up in Python."""

    tokens: dict[str, float]
    requests: dict[str, float]
    model_cost: dict[str, float]
    model_gpus: dict[str, float]
    fleet_gpus: float
    fleet_cost: float
    fleet_power: float
    economics: dict[str, dict[str, float]]
    """The new fleet rules' expected values, by rule and label value (see ``economic_parts``)."""

    @property
    def fleet_tokens(self) -> float:
        return sum(self.tokens.values())


def counted_elsewhere(prometheus: PrometheusProcess, at: float) -> set[tuple[str, str]]:
    """(instance, server) of the servers whose requests and tokens their deployment counts from another.

    A deployment with a frontend counts from its frontends; one without, from its decode and engine
    servers. The others (prefill, workers, engines behind a frontend) must not be counted again.
    """
    members = [s["metric"] for s in _at(prometheus, "inference_server_deployment_info", at)]
    fronted = {m["deployment"] for m in members if m["role"] == "frontend"}
    counting = {"frontend"}, {"engine", "decode"}
    return {
        (m["instance"], m["server"])
        for m in members
        if m["role"] not in (counting[0] if m["deployment"] in fronted else counting[1])
    }


def parts_at(prometheus: PrometheusProcess, at: float) -> Parts:
    """The per-exporter series at ``at``, and their sums as the recording rules define them."""
    elsewhere = counted_elsewhere(prometheus, at)
    assert elsewhere, "the demo's deployment has servers its frontend counts for"
    all_tps = _at(prometheus, "inference_generation_tokens_per_second", at)
    tps = [s for s in all_tps if (s["metric"]["instance"], s["metric"]["server"]) not in elsewhere]
    requests = [
        s
        for s in _at(prometheus, "inference_requests_per_second", at)
        if (s["metric"]["instance"], s["metric"]["server"]) not in elsewhere
    ]
    cpm = _by(_at(prometheus, "inference_cost_per_million_generation_tokens", at), "instance", "server", "model")
    gpus = _by(_at(prometheus, "inference_server_gpus", at), "instance", "server")
    model_cost: dict[str, float] = defaultdict(float)
    model_gpus: dict[str, float] = defaultdict(float)
    serving: set[tuple[str, str]] = set()
    for s in all_tps:  # every server's cost and GPUs count, whoever counts its requests
        key = (s["metric"]["instance"], s["metric"]["server"], s["metric"]["model"])
        model_cost[key[2]] += cpm.get(key, 0.0) * _value(s) / 1e6  # no price while nothing was generated
        model_gpus[key[2]] += gpus[key[:2]]
        serving.add(key[:2])
    serving |= {(m["instance"], m["server"]) for m in _metrics(prometheus, "inference_server_deployment_info", at)}
    return Parts(
        tokens=_sum_by_model(tps),
        requests=_sum_by_model(requests),
        model_cost=dict(model_cost),
        model_gpus=dict(model_gpus),
        fleet_gpus=sum(gpus[key] for key in serving),
        fleet_cost=sum(_value(s) for s in _at(prometheus, "inference_server_cost_per_second", at)),
        fleet_power=sum(_value(s) for s in _at(prometheus, "inference_server_power_watts", at)),
        economics=economic_parts(prometheus, at, elsewhere),
    )


def _metrics(prometheus: PrometheusProcess, name: str, at: float) -> list[dict[str, str]]:
    return [s["metric"] for s in _at(prometheus, name, at)]


MODEL_KEY = ("instance", "server", "model")


def _total(prometheus: PrometheusProcess, name: str, at: float) -> float:
    return sum(_value(s) for s in _at(prometheus, name, at))


def economic_parts(
    prometheus: PrometheusProcess, at: float, elsewhere: set[tuple[str, str]]
) -> dict[str, dict[str, float]]:
    """What the cost, phase and efficiency rules must be, from the exporters' series at ``at``."""
    server_cost = _total(prometheus, "inference_server_cost_per_second", at)
    idle = _total(prometheus, "inference_server_idle_cost_per_second", at)
    prompt = _by(_at(prometheus, "inference_prompt_tokens_per_second", at), *MODEL_KEY)
    generation = _by(_at(prometheus, "inference_generation_tokens_per_second", at), *MODEL_KEY)
    hits = _by(_at(prometheus, "inference_prompt_cache_hit_ratio", at), *MODEL_KEY)
    mfu = _by(_at(prometheus, "inference_model_flops_utilization_ratio", at), *MODEL_KEY)
    gpus = _by(_at(prometheus, "inference_server_gpus", at), "instance", "server")
    phase_cost: dict[str, float] = defaultdict(float)
    phase_tokens: dict[str, float] = defaultdict(float)
    priced: set[tuple[tuple[str, ...], str]] = set()
    for s in _at(prometheus, "inference_cost_per_million_tokens", at):
        key, phase = tuple(s["metric"][label] for label in MODEL_KEY), s["metric"]["phase"]
        tokens = (prompt if phase == "prompt" else generation)[key]
        phase_cost[phase] += _value(s) * tokens / 1e6
        priced.add((key, phase))
    for phase, rates in (("prompt", prompt), ("generation", generation)):
        for key, tokens in rates.items():  # each request's tokens once: priced servers', and the frontends'
            counted = key[:2] not in elsewhere
            if counted and ((key, phase) in priced or _role(prometheus, at, key[:2]) == "frontend"):
                phase_tokens[phase] += tokens
    return {
        ":inference_node_cost_per_second:sum": {"": _total(prometheus, "inference_node_cost_per_second", at)},
        "state:inference_gpu_cost_per_second:sum": {
            "serving": server_cost - idle,
            "idle": idle,
            "unattributed": _total(prometheus, "inference_unattributed_gpu_cost_per_second", at),
        },
        ":inference_server_idle_cost_per_second:ratio": {"": idle / server_cost},
        "phase:inference_cost_per_million_tokens:ratio": {
            phase: phase_cost[phase] / phase_tokens[phase] * 1e6 for phase in phase_tokens
        },
        ":inference_prompt_cache_hit:ratio": {
            "": sum(hits[k] * prompt[k] for k in hits) / sum(prompt[k] for k in hits)
        },
        ":inference_energy_joules_per_token:ratio": {
            "": _total(prometheus, "inference_server_power_watts", at)
            / (
                sum(v for k, v in prompt.items() if k[:2] not in elsewhere)
                + sum(v for k, v in generation.items() if k[:2] not in elsewhere)
            )
        },
        ":inference_model_flops_utilization:ratio": {
            "": sum(mfu[k] * gpus[k[:2]] for k in mfu) / sum(gpus[k[:2]] for k in mfu)
        },
    }


def _role(prometheus: PrometheusProcess, at: float, server: tuple[str, str]) -> str:
    for m in _metrics(prometheus, "inference_server_deployment_info", at):
        if (m["instance"], m["server"]) == server:
            return m["role"]
    return ""


def expected_rules(parts: Parts) -> dict[str, dict[str, float]]:
    """What each recording rule must be, by model (``""`` for the fleet rules)."""
    models = parts.tokens
    return {
        "model:inference_generation_tokens_per_second:sum": parts.tokens,
        "model:inference_server_gpus:sum": parts.model_gpus,
        "model:inference_generation_tokens_per_second_per_gpu:ratio": {
            m: parts.tokens[m] / parts.model_gpus[m] for m in models
        },
        "model:inference_requests_per_second:sum": parts.requests,
        "model:inference_cost_per_second:sum": parts.model_cost,
        "model:inference_cost_per_million_generation_tokens:ratio": {
            m: parts.model_cost[m] / parts.tokens[m] * 1e6 for m in models
        },
        "model:inference_cost_per_request:ratio": {m: parts.model_cost[m] / parts.requests[m] for m in models},
        ":inference_generation_tokens_per_second:sum": {"": parts.fleet_tokens},
        ":inference_server_gpus:sum": {"": parts.fleet_gpus},
        ":inference_generation_tokens_per_second_per_gpu:ratio": {"": parts.fleet_tokens / parts.fleet_gpus},
        ":inference_server_cost_per_second:sum": {"": parts.fleet_cost},
        ":inference_cost_per_million_generation_tokens:ratio": {"": parts.fleet_cost / parts.fleet_tokens * 1e6},
        ":inference_energy_joules_per_generation_token:ratio": {"": parts.fleet_power / parts.fleet_tokens},
        **parts.economics,
    }


FLEET_TOLERANCE = 0.02
"""Relative tolerance between a recording rule and the sum of the exporters' series at its timestamp.

The rule was evaluated at time T from the latest sample of each exporter at or before T. Reading
the same series at T afterwards usually finds exactly those samples, but a scrape that started just
before T and finished just after it is seen by the later read and not by the rule: one scrape
(1 s) of skew for some exporters. Measured over a minute of the demo, one scrape of skew moves
these values by at most 0.13 % (a demand curve with a period of 5 minutes or more, averaged over a
30 s rate window), so 2 % covers it fifteen times over, while a rule that misses or double-counts
an exporter is off by a third or more.
"""


def test_fleet_recording_rules_equal_the_sum_of_the_exporters(stack: Stack) -> None:
    prometheus = stack.prometheus
    demo_instances = {f"127.0.0.1:{d.port}" for d in stack.demos}
    wait_for(lambda: prometheus.query(":inference_energy_joules_per_generation_token:ratio"), DATA_DEADLINE, 1.0)
    stamp = prometheus.query("timestamp(:inference_generation_tokens_per_second:sum)")
    at = _value(stamp[0])
    parts = parts_at(prometheus, at)
    instances = {s["metric"]["instance"] for s in _at(prometheus, "inference_generation_tokens_per_second", at)}
    assert instances == demo_instances
    assert len(parts.tokens) == 3  # llama-70b, qwen-32b and the deployment's model
    for name, expected in expected_rules(parts).items():
        got = {_rule_key(s["metric"]): _value(s) for s in _at(prometheus, name, at)}
        assert got.keys() == expected.keys(), name
        for model, value in expected.items():
            assert math.isclose(got[model], value, rel_tol=FLEET_TOLERANCE), (name, model, got[model], value)


def _rule_key(labels: dict[str, str]) -> str:
    """The one label a fleet rule keeps (model, state or phase), ``""`` for none."""
    return next((labels[name] for name in ("model", "state", "phase") if name in labels), "")


def test_the_fleet_cost_by_state_adds_up_to_the_cost_of_every_gpu(stack: Stack) -> None:
    prometheus = stack.prometheus
    wait_for(lambda: prometheus.query("state:inference_gpu_cost_per_second:sum"), DATA_DEADLINE, 1.0)
    at = _value(prometheus.query("timestamp(:inference_node_cost_per_second:sum)")[0])
    states = {s["metric"]["state"]: _value(s) for s in _at(prometheus, "state:inference_gpu_cost_per_second:sum", at)}
    assert set(states) == {"serving", "idle", "unattributed"}
    assert states["unattributed"] > 0  # each demo node leaves two GPUs to no server
    (node,) = _at(prometheus, ":inference_node_cost_per_second:sum", at)
    assert math.isclose(sum(states.values()), _value(node), rel_tol=1e-3)


def test_prometheus_rejects_a_broken_query_so_the_checks_above_can_fail(stack: Stack) -> None:
    with pytest.raises(QueryError):
        stack.prometheus.query("inference_server_gpus * on(server) inference_generation_tokens_per_second")
