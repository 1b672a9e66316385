"""The exporter as a real process on the ``mig`` and ``xid`` scenarios of ``--gpu.simulate``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gpu_support import series
from tests.helpers import run_exporter, sample_value, wait_for

pytestmark = pytest.mark.e2e


def config(tmp_path: Path) -> str:
    path = tmp_path / "config.yml"
    path.write_text("gpu: {gpm: true, fast_interval: 500ms, slow_interval: 1s}\n", encoding="utf-8")
    return str(path)


def test_the_mig_scenario_serves_each_instance_with_its_own_activity(tmp_path: Path) -> None:
    with run_exporter(["--config.file", config(tmp_path), "--gpu.simulate", "mig"], tmp_path) as exporter:

        def measured() -> str | None:
            text = exporter.metrics()
            return text if len(series(text, "inference_mig_device_sm_activity_ratio")) == 4 else None

        text = str(wait_for(measured, 60, interval=0.2, what="GPM activity of every MIG instance"))
    assert len(series(text, "inference_mig_device_info")) == 4
    assert sorted(series(text, "inference_mig_device_sm_activity_ratio").values()) == pytest.approx([0, 0.2, 0.5, 0.9])
    assert sample_value(text, "inference_gpu_utilization_ratio", gpu="0") is None
    assert sample_value(text, "inference_gpu_sm_activity_ratio", gpu="1") == pytest.approx(0.4)


def test_the_xid_scenario_counts_repeated_xids_as_they_happen(tmp_path: Path) -> None:
    with run_exporter(["--config.file", config(tmp_path), "--gpu.simulate", "xid"], tmp_path) as exporter:

        def repeated() -> str | None:
            text = exporter.metrics()
            count = sample_value(text, "inference_gpu_xid_errors_total", gpu="1", xid="31")
            return text if count is not None and count >= 2 else None

        text = str(wait_for(repeated, 60, interval=0.5, what="XID 31 counted twice"))
        log = exporter.log()
    assert sample_value(text, "inference_gpu_xid_errors_total", gpu="2", xid="48") == 1.0
    assert '"gpu_xid_error"' in log and "Traceback" not in log
