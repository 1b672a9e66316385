"""A real llama.cpp ``llama-server`` for end-to-end tests: find the cached build, make a model, run it.

``scripts/build-llama-server.sh`` builds the server from the llama-cpp-python sdist and caches it,
with the vocab-only GGUF from the same tree, in
``${ITE_CACHE_DIR:-~/.cache/inference-throughput-exporter}/llama.cpp-<version>/``. ``LLAMA_SERVER``
points at another binary. Without one, the test skips (fails under ``ITE_REQUIRE_TOOLS=1``, as in CI).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import require_tool
from tests.helpers import stop_process, wait_for

VERSION = os.environ.get("LLAMA_CPP_PYTHON_VERSION", "0.3.36")
"""The llama-cpp-python sdist whose llama.cpp tree is built; keep in step with scripts/build-llama-server.sh."""
VOCAB = "ggml-vocab-llama-spm.gguf"
BUILD_HINT = "run scripts/build-llama-server.sh (10-20 minutes on 2 cores once, then cached) or set LLAMA_SERVER"


def cache_dir() -> Path:
    """Where the build script caches this version's binary and vocabulary."""
    root = os.environ.get("ITE_CACHE_DIR") or str(Path.home() / ".cache" / "inference-throughput-exporter")
    return Path(root) / f"llama.cpp-{VERSION}"


def wait_for_running_build(timeout: float = float(os.environ.get("ITE_LLAMA_BUILD_WAIT", "1800"))) -> None:
    """If the build script is building this version right now, wait for it to finish (or die)."""
    marker = cache_dir() / ".building"
    deadline = time.monotonic() + timeout
    while marker.is_file() and time.monotonic() < deadline:
        try:
            os.kill(int(marker.read_text().strip() or "0"), 0)
        except (ValueError, ProcessLookupError, FileNotFoundError):
            return  # a stale marker: the build is gone
        except PermissionError:
            pass  # alive, owned by someone else
        time.sleep(2.0)


def find_llama_server() -> tuple[Path, Path]:
    """The ``llama-server`` binary and the vocab GGUF beside it (or in the cache); skip or fail without them."""
    if not os.environ.get("LLAMA_SERVER"):
        wait_for_running_build()
    binary = Path(require_tool(os.environ.get("LLAMA_SERVER") or str(cache_dir() / "llama-server"), BUILD_HINT))
    for vocab in (binary.parent / VOCAB, cache_dir() / VOCAB):
        if vocab.is_file():
            return binary, vocab
    require_tool(str(cache_dir() / VOCAB), BUILD_HINT)  # skips or fails with the reason
    raise AssertionError("unreachable")


def healthy(base: str) -> bool:
    """Whether ``/health`` answers 200 with status ok (it answers 503 while the model loads)."""
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=2.0) as response:
            return bool(json.loads(response.read()) == {"status": "ok"})
    except urllib.error.HTTPError as exc:
        exc.close()
        return False
    except OSError:
        return False


@dataclass
class LlamaServer:
    """One ``llama-server`` process on 127.0.0.1, started and stopped by PID; ``restart`` keeps the port."""

    binary: Path
    model: Path
    port: int
    log_path: Path
    args: tuple[str, ...] = ("-c", "8192", "-np", "4", "-t", "1", "-tb", "1")
    """Four slots of 2,048 tokens each, so one request can run for seconds. One thread: on a busy
    2-core machine, two threads that spin-wait for each other were seen to fall from ~700 to ~12 tokens/s."""
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until ``/health`` answers 200 (the model is loaded)."""
        self.starts += 1
        command = [str(self.binary), "-m", str(self.model), "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.with_suffix(f".{self.starts}.log").open("wb") as log:
            self.process = subprocess.Popen(
                [*command, "--metrics", "--slots", *self.args], stdout=log, stderr=subprocess.STDOUT
            )
        process = self.process
        wait_for(
            lambda: process.poll() is None and healthy(self.base),
            timeout,
            what=f"llama-server on port {self.port} to load its model (see {self.log_path.parent})",
        )

    def stop(self) -> None:
        """SIGTERM by PID, SIGKILL if it lingers."""
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()
