#!/usr/bin/env bash
# Regenerate the Python modules of the kubelet pod-resources API from
# exporter/attribution/podresources/api.proto. Needs grpcio-tools (not a dependency of the
# exporter): PYTHON=/path/to/venv/bin/python scripts/gen-podresources.sh
# The generated code must not be newer than the protobuf runtime it runs with; pick a
# grpcio-tools release whose protoc matches the protobuf version in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
out=exporter/attribution/podresources
"$PYTHON" -m grpc_tools.protoc -I . --python_out=. --grpc_python_out=. "$out/api.proto"
tools=$("$PYTHON" -c 'import grpc_tools, importlib.metadata as m; print(m.version("grpcio-tools"))')
protoc=$("$PYTHON" -m grpc_tools.protoc --version)
for file in "$out/api_pb2.py" "$out/api_pb2_grpc.py"; do
  {
    echo "# Generated from exporter/attribution/podresources/api.proto by scripts/gen-podresources.sh"
    echo "# (grpcio-tools $tools, $protoc). Do not edit: change the .proto and regenerate."
    cat "$file"
  } > "$file.tmp"
  mv "$file.tmp" "$file"
done
