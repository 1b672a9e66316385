"""The fleet dashboard and the recording rules, asked of a long-term store (VictoriaMetrics).

Three demo exporters (seeds 1, 2, 3: simulated nodes of 10 H100s: vLLM, SGLang and a prefill/decode deployment each) are
scraped by one Prometheus (1 s scrapes) that evaluates the shipped rule files, unchanged, and
remote-writes everything to a real VictoriaMetrics, with the ``remote_write`` block of
docs/long-term-storage.md. Every panel query of the fleet dashboard (its variables resolved
through their own queries, against VictoriaMetrics) and every recording rule must return data
when asked of VictoriaMetrics, and each recorded value there must be the one Prometheus recorded.

A second, "global" Prometheus federates from the first with the federation job of
docs/long-term-storage.md (its scrape interval cut from 30 s to 2 s): it must get every fleet
record and no raw ``inference_*`` series.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool
from tests.helpers import run_exporter, wait_for
from tests.prometheus_stack import PrometheusProcess, run_prometheus, scrape_config
from tests.test_prometheus_e2e import DATA_DEADLINE, _eventually_empty, _substitute, panel_queries, resolve_variables
from tests.victoria_stack import run_victoria_metrics

pytestmark = [pytest.mark.e2e, pytest.mark.prometheus, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
RULE_FILES = [ROOT / "rules" / "recording.yml", ROOT / "rules" / "alerts.yml"]
FLEET = json.loads((ROOT / "dashboards" / "inference-fleet.json").read_text(encoding="utf-8"))
JOB = yaml.safe_load((ROOT / "rules" / "settings.yml").read_text(encoding="utf-8"))["exporter_job"]


DOC = (ROOT / "docs" / "long-term-storage.md").read_text(encoding="utf-8")


def doc_block(first_line: str) -> dict[str, Any]:
    """The YAML block of docs/long-term-storage.md that starts with ``first_line``."""
    (text,) = re.findall(rf"```yaml\n({re.escape(first_line)}\n.*?)```", DOC, flags=re.S)
    return dict(yaml.safe_load(text))


@dataclass
class Stack:
    prometheus: PrometheusProcess
    store: PrometheusProcess
    global_: PrometheusProcess


def _remote_write(store: PrometheusProcess) -> list[dict[str, Any]]:
    (block,) = doc_block("# prometheus.yml")["remote_write"]
    return [{**block, "url": f"{store.base}/api/v1/write", "queue_config": {"batch_send_deadline": "1s"}}]


def _federation(prometheus: PrometheusProcess) -> dict[str, Any]:
    (job,) = doc_block("# the global Prometheus's prometheus.yml")["scrape_configs"]
    job = {**job, "scrape_interval": "2s", "scrape_timeout": "2s"}
    job["static_configs"] = [{"targets": [f"127.0.0.1:{prometheus.port}"]}]
    return {"global": {"scrape_interval": "2s", "evaluation_interval": "2s"}, "scrape_configs": [job]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_binary = require_tool("prometheus", "apt-get install prometheus")
    tmp = tmp_path_factory.mktemp("long-term")
    with contextlib.ExitStack() as exits:
        store = exits.enter_context(run_victoria_metrics(tmp))
        nodes = [exits.enter_context(run_exporter(["demo", "--seed", str(seed)], tmp)) for seed in (1, 2, 3)]
        config = scrape_config(JOB, [f"127.0.0.1:{node.port}" for node in nodes], RULE_FILES)
        config["global"]["external_labels"] = {"cluster": "test"}
        config["remote_write"] = _remote_write(store)
        prometheus = exits.enter_context(run_prometheus(prometheus_binary, config, tmp))
        global_dir = tmp / "global"
        global_dir.mkdir()
        global_ = exits.enter_context(run_prometheus(prometheus_binary, _federation(prometheus), global_dir))
        yield Stack(prometheus, store, global_)


def records(files: list[Path] = RULE_FILES) -> list[str]:
    groups = [g for path in files for g in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]]
    return [rule["record"] for group in groups for rule in group["rules"] if "record" in rule]


def _fleet_without_data(store: PrometheusProcess) -> list[str]:
    values, empty = resolve_variables(store, FLEET)
    if empty:
        return empty
    queries = [(title, _substitute(expr, values)) for title, expr in panel_queries(FLEET)]
    return [f"{title}: {query}" for title, query in queries if not store.query(query)]


def test_every_fleet_panel_query_returns_data_from_victoria_metrics(stack: Stack) -> None:
    assert len(list(panel_queries(FLEET))) >= 15
    _eventually_empty(lambda: _fleet_without_data(stack.store), "fleet panel queries without data in VictoriaMetrics")


def test_every_recording_rule_returns_data_from_victoria_metrics(stack: Stack) -> None:
    names = records()
    assert len(names) >= 16
    _eventually_empty(lambda: [n for n in names if not stack.store.query(n)], "records without data in VictoriaMetrics")


def _series(result: list[dict[str, object]], **extra: str) -> dict[str, float]:
    """Value by label set; ``extra`` labels added (Prometheus adds external labels only to what it sends)."""
    return {json.dumps({**s["metric"], **extra}, sort_keys=True): float(s["value"][1]) for s in result}  # type: ignore[dict-item,index]


def test_the_store_holds_the_values_prometheus_recorded_with_its_external_labels(stack: Stack) -> None:
    name = ":inference_generation_tokens_per_second:sum"
    wait_for(lambda: stack.store.query(name), DATA_DEADLINE, 1.0, f"{name} in VictoriaMetrics")
    # the store's newest sample, which Prometheus surely holds (remote write lags a little behind)
    at = float(stack.store.query(f"timestamp({name})")[0]["value"][1])
    # the fleet rules: one group, so both hold the sample of `at`; VictoriaMetrics may round a float's last digits
    for record in records(RULE_FILES[:1]):
        local = _series(stack.prometheus.query(record, at), cluster="test")
        remote = _series(stack.store.query(record, at))
        assert local.keys() == remote.keys(), record
        for key, value in local.items():
            assert math.isclose(remote[key], value, rel_tol=1e-9), (record, key, remote[key], value)
    labels = stack.store.query(name, at)[0]["metric"]
    assert labels == {"__name__": name, "cluster": "test"}


def test_federating_the_recording_rules_brings_every_fleet_record_and_nothing_raw(stack: Stack) -> None:
    fleet = records(RULE_FILES[:1])
    _eventually_empty(lambda: [n for n in fleet if not stack.global_.query(n)], "fleet records not federated")
    names = set(stack.global_.label_values("__name__", '{__name__=~".+"}'))  # all it holds: it scrapes nothing else
    assert set(fleet) <= names
    raw = sorted(n for n in names if n.startswith("inference_"))
    assert raw == [], "raw series federated"
    assert stack.global_.query(':inference_generation_tokens_per_second:sum{cluster="test"}')
