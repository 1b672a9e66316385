"""Write a tiny llama-architecture GGUF with random weights, for driving a real llama-server in tests.

No model hub is reachable from CI, so the model is made here: llama.cpp's own tensor names
(``token_embd.weight``, ``blk.N.attn_q.weight``, ...), random float32 weights from a seeded
generator, and the tokenizer copied key by key (with its value types) from a vocab-only GGUF that
ships in the llama.cpp tree (``models/ggml-vocab-llama-spm.gguf``). The text it generates is noise,
but the server runs its real code paths: tokenizing, batching, slots, sampling and counting.

The default shape (width 64, 2 layers, 4 heads, 32,000-token vocabulary) is about 9 MB.

Run it by hand: ``python -m tests.e2e.tiny_gguf VOCAB.gguf OUT.gguf``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

ARCH = "llama"
TOKENIZER_PREFIX = "tokenizer.ggml."


@dataclass(frozen=True, slots=True)
class Shape:
    """The model's hyperparameters."""

    embedding: int = 64
    layers: int = 2
    heads: int = 4
    feed_forward: int = 128
    context: int = 4096
    rms_epsilon: float = 1e-5


def copy_tokenizer(vocab_path: Path, writer: gguf.GGUFWriter) -> int:
    """Copy every ``tokenizer.ggml.*`` key of ``vocab_path`` with its types; return the vocabulary size."""
    reader = gguf.GGUFReader(vocab_path)
    size = 0
    for key, field in reader.fields.items():
        if not key.startswith(TOKENIZER_PREFIX):
            continue
        vtype = field.types[0]
        sub_type = field.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type=sub_type)
        if key == TOKENIZER_PREFIX + "tokens":
            size = len(field.data)
    if size == 0:
        raise ValueError(f"{vocab_path} has no {TOKENIZER_PREFIX}tokens")
    return size


def _hyperparameters(writer: gguf.GGUFWriter, shape: Shape, vocab_size: int) -> None:
    writer.add_name("tiny-random-llama")
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.embedding)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.feed_forward)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.heads)
    writer.add_rope_dimension_count(shape.embedding // shape.heads)
    writer.add_layer_norm_rms_eps(shape.rms_epsilon)
    writer.add_vocab_size(vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)


def tensors(shape: Shape, vocab_size: int, seed: int) -> dict[str, np.ndarray]:
    """Every tensor by llama.cpp name; numpy shapes are ggml's dimensions reversed."""
    rng = np.random.default_rng(seed)
    d, ff = shape.embedding, shape.feed_forward

    def weight(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32)

    out = {"token_embd.weight": weight(vocab_size, d), "output_norm.weight": np.ones(d, dtype=np.float32)}
    for i in range(shape.layers):
        block = f"blk.{i}."
        out[block + "attn_norm.weight"] = np.ones(d, dtype=np.float32)
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            out[block + name + ".weight"] = weight(d, d)
        out[block + "ffn_norm.weight"] = np.ones(d, dtype=np.float32)
        out[block + "ffn_gate.weight"] = weight(ff, d)
        out[block + "ffn_up.weight"] = weight(ff, d)
        out[block + "ffn_down.weight"] = weight(d, ff)
    return out


def write_tiny_gguf(vocab_path: Path, out_path: Path, *, shape: Shape = Shape(), seed: int = 0) -> Path:
    """Write the model to ``out_path`` (through a temporary file, so a reader never sees half of it)."""
    partial = out_path.with_name(out_path.name + ".partial")
    writer = gguf.GGUFWriter(partial, ARCH)
    vocab_size = copy_tokenizer(vocab_path, writer)
    _hyperparameters(writer, shape, vocab_size)
    for name, array in tensors(shape, vocab_size, seed).items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(out_path)
    return out_path


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m tests.e2e.tiny_gguf VOCAB.gguf OUT.gguf [--seed N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vocab", type=Path, help="a vocab-only GGUF such as ggml-vocab-llama-spm.gguf")
    parser.add_argument("out", type=Path, help="where to write the model")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = write_tiny_gguf(args.vocab, args.out, seed=args.seed)
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
