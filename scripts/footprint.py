"""Measure the exporter's memory and CPU as a service would run it, to size MemoryMax and pod resources.

The exporter runs as its own process (``python -m exporter``) against two simulated vLLM servers
that this script serves on loopback (tensor parallel 4 each over 8 GPUs), with the simulated 8x H100
node (``--gpu.simulate h100x8``) or, with ``--real-gpus``, the machine's own GPUs through NVML. The
script scrapes ``/metrics`` as Prometheus would and samples ``/proc/PID`` for resident memory (now and
peak) and CPU time. It prints one JSON object.

    python scripts/footprint.py --duration 120 --scrape-interval 1
    python scripts/footprint.py --real-gpus --user 65534      # on a GPU machine, as an unprivileged user

``--mdwe`` runs the exporter with memory-deny-write-execute (``prctl(PR_SET_MDWE)``, Linux 6.3+), the
kernel feature behind systemd's ``MemoryDenyWriteExecute=yes``, to show the unit's setting is safe.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.demo.simulator import SimulatedVllm, simulated_app  # noqa: E402

PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
TICKS = os.sysconf("SC_CLK_TCK")


def serve_upstreams(count: int) -> list[str]:
    """Start ``count`` simulated vLLM servers on 127.0.0.1 in a background thread; return their URLs."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    async def start(index: int) -> str:
        server = SimulatedVllm(model=f"model-{index}", capacity=2500.0, swing=0.2, period=120.0)
        runner = web.AppRunner(simulated_app(server), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"

    return [asyncio.run_coroutine_threadsafe(start(i), loop).result(30) for i in range(count)]


def write_config(urls: list[str], folder: Path) -> Path:
    lines = ["poll_interval: 1s", "rate_window: 30s", "gpu: {enabled: true}", "servers:"]
    for i, url in enumerate(urls):
        gpus = ", ".join(str(g) for g in range(i * 4, i * 4 + 4))
        lines += [f"  - name: server-{i}", f"    url: {url}", "    kind: vllm", f"    gpus: [{gpus}]"]
        lines += ["    timeout: 800ms"]
    path = folder / "config.yml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o644)
    return path


MDWE_EXEC = f"""
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:
    raise SystemExit("prctl(PR_SET_MDWE) failed: " + os.strerror(ctypes.get_errno()))
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""
"""Set memory-deny-write-execute (kept across exec), then exec the exporter."""


def proc_sample(pid: int) -> tuple[int, int, float]:
    """(resident bytes, peak resident bytes, CPU seconds) of ``pid``."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    rss, hwm = (int(status[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return rss, hwm, (int(fields[11]) + int(fields[12])) / TICKS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def wait_ready(base: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the exporter exited with {process.returncode}")
        try:
            get(base + "/-/ready")
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the exporter did not become ready")


def measure(args: argparse.Namespace, folder: Path) -> dict[str, object]:
    config = write_config(serve_upstreams(2), folder)
    port = args.port or free_port()
    command = [sys.executable, *(["-c", MDWE_EXEC] if args.mdwe else []), "-m", "exporter"]
    command += ["--config.file", str(config), "--web.listen-address"]
    command += [f"127.0.0.1:{port}", "--log.format", "json"]
    if not args.real_gpus:
        command += ["--gpu.simulate", "h100x8"]
    log = (folder / "exporter.log").open("wb")
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        user=args.user,
        group=args.user,
        extra_groups=[] if args.user is not None else None,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
        _, _, cpu_start = proc_sample(process.pid)
        started, scrapes, size, peak_rss = time.monotonic(), 0, 0, 0
        while time.monotonic() - started < args.duration:
            size = len(get(base + "/metrics"))
            scrapes += 1
            peak_rss = max(peak_rss, proc_sample(process.pid)[0])
            time.sleep(args.scrape_interval)
        rss, hwm, cpu_end = proc_sample(process.pid)
        elapsed = time.monotonic() - started
        body = get(base + "/metrics").decode()
    except BaseException:
        print((folder / "exporter.log").read_text(errors="replace")[-4000:], file=sys.stderr)
        raise
    finally:
        process.terminate()
        process.wait(30)
        log.close()
    nvml_up = next((line.split()[-1] for line in body.splitlines() if line.startswith("inference_nvml_up ")), None)
    return {
        "gpus": "real" if args.real_gpus else "simulated h100x8",
        "uid": args.user if args.user is not None else os.getuid(),
        "mdwe": args.mdwe,
        "seconds": round(elapsed, 1),
        "scrapes": scrapes,
        "metrics_bytes": size,
        "rss_mib": round(rss / 2**20, 1),
        "rss_peak_sampled_mib": round(peak_rss / 2**20, 1),
        "rss_high_water_mib": round(hwm / 2**20, 1),
        "cpu_cores_average": round((cpu_end - cpu_start) / elapsed, 4),
        "inference_nvml_up": nvml_up,
        "gpu_series": sum(line.startswith("inference_gpu_power_watts{") for line in body.splitlines()),
        "exit_code": process.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of scraping (default 60)")
    parser.add_argument("--scrape-interval", type=float, default=1.0, help="seconds between scrapes (default 1)")
    parser.add_argument("--port", type=int, default=0, help="loopback port for the exporter (default: a free one)")
    parser.add_argument("--real-gpus", action="store_true", help="read this machine's GPUs through NVML")
    parser.add_argument("--user", type=int, help="run the exporter as this uid (needs root)")
    parser.add_argument("--mdwe", action="store_true", help="deny writable-executable memory (Linux 6.3+)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ite-footprint-") as folder:
        os.chmod(folder, 0o755)
        print(json.dumps(measure(args, Path(folder))), flush=True)


if __name__ == "__main__":
    main()
