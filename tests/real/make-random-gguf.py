#!/usr/bin/env python3
"""Write a random-weight Qwen2-architecture GGUF whose tokenizer is copied from a vocab-only GGUF.

Part of agentreplay's `real` test tier (see setup-llama.sh).  Timing of llama.cpp depends on a
model's shape and tensor types, not on its weights, so random weights + a real tokenizer give a
real workload.  Output of such a model is gibberish that practically never hits EOS.

Needs numpy and llama.cpp's gguf-py on PYTHONPATH (setup-llama.sh sets both up), e.g.

    PYTHONPATH=$SRC/gguf-py /usr/bin/python3 make-random-gguf.py \
        --vocab $SRC/models/ggml-vocab-qwen2.gguf --out tiny.gguf \
        --n-embd 128 --n-layer 8 --n-head 2 --n-head-kv 1 --n-ff 512
"""
from __future__ import annotations

import argparse
import os
import sys
import types

# gguf-py's metadata module imports yaml at import time but only uses it for model cards;
# a fresh Debian may lack python3-yaml, so stand in a stub rather than require it.
try:
    import yaml  # noqa: F401
except ImportError:
    sys.modules["yaml"] = types.ModuleType("yaml")

import numpy as np

try:
    import gguf
except ImportError as e:
    sys.exit(f"make-random-gguf: cannot import gguf ({e}); put llama.cpp's gguf-py on PYTHONPATH")

# Plain ChatML, as used by Qwen2 instruct models (without Qwen's default system prompt).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def copy_tokenizer(reader: gguf.GGUFReader, writer: gguf.GGUFWriter) -> int:
    """Copy every tokenizer.* key; return the vocabulary size."""
    n_vocab = 0
    for name, field in reader.fields.items():
        if not name.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        val = field.contents()
        if vtype == gguf.GGUFValueType.ARRAY:
            sub = field.types[-1]
            writer.add_key_value(name, val, vtype, sub_type=sub)
            if name == "tokenizer.ggml.tokens":
                n_vocab = len(val)
        else:
            writer.add_key_value(name, val, vtype)
    if n_vocab == 0:
        raise SystemExit("make-random-gguf: vocab file has no tokenizer.ggml.tokens")
    if "tokenizer.chat_template" not in reader.fields:
        writer.add_chat_template(CHATML_TEMPLATE)
    return n_vocab


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", required=True, help="vocab-only GGUF to take tokenizer.* metadata from")
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default="agentreplay-random")
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--n-layer", type=int, default=8)
    ap.add_argument("--n-head", type=int, default=2)
    ap.add_argument("--n-head-kv", type=int, default=1)
    ap.add_argument("--n-ff", type=int, default=512)
    ap.add_argument("--ctx", type=int, default=131072, help="context_length written to the metadata")
    ap.add_argument("--rope-base", type=float, default=1000000.0)
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()

    if a.n_embd % a.n_head or a.n_head % a.n_head_kv:
        sys.exit("make-random-gguf: n_embd must divide by n_head, n_head by n_head_kv")
    head_dim = a.n_embd // a.n_head
    n_embd_kv = head_dim * a.n_head_kv

    reader = gguf.GGUFReader(a.vocab)
    arch = "qwen2"
    writer = gguf.GGUFWriter(a.out, arch)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(a.name)
    writer.add_description("random weights, real Qwen2 BPE tokenizer; made by agentreplay tests/real/make-random-gguf.py")
    writer.add_context_length(a.ctx)
    writer.add_embedding_length(a.n_embd)
    writer.add_block_count(a.n_layer)
    writer.add_feed_forward_length(a.n_ff)
    writer.add_head_count(a.n_head)
    writer.add_head_count_kv(a.n_head_kv)
    writer.add_rope_freq_base(a.rope_base)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    n_vocab = copy_tokenizer(reader, writer)

    rng = np.random.default_rng(a.seed)

    def w(rows: int, cols: int, scale: float = 0.02) -> np.ndarray:
        # numpy shape (rows, cols) == ggml ne {cols, rows}
        return (rng.standard_normal((rows, cols), dtype=np.float32) * scale).astype(np.float16)

    def b(n: int) -> np.ndarray:
        return (rng.standard_normal(n, dtype=np.float32) * 0.02).astype(np.float32)

    ones = lambda n: np.ones(n, dtype=np.float32)  # noqa: E731

    n_params = 0
    def add(name: str, t: np.ndarray) -> None:
        nonlocal n_params
        n_params += t.size
        writer.add_tensor(name, t)

    # tied output: no output.weight, llama.cpp reuses token_embd
    add("token_embd.weight", w(n_vocab, a.n_embd))
    add("output_norm.weight", ones(a.n_embd))
    for i in range(a.n_layer):
        p = f"blk.{i}."
        add(p + "attn_norm.weight", ones(a.n_embd))
        add(p + "attn_q.weight", w(a.n_embd, a.n_embd))
        add(p + "attn_q.bias", b(a.n_embd))
        add(p + "attn_k.weight", w(n_embd_kv, a.n_embd))
        add(p + "attn_k.bias", b(n_embd_kv))
        add(p + "attn_v.weight", w(n_embd_kv, a.n_embd))
        add(p + "attn_v.bias", b(n_embd_kv))
        add(p + "attn_output.weight", w(a.n_embd, a.n_embd))
        add(p + "ffn_norm.weight", ones(a.n_embd))
        add(p + "ffn_gate.weight", w(a.n_ff, a.n_embd))
        add(p + "ffn_up.weight", w(a.n_ff, a.n_embd))
        add(p + "ffn_down.weight", w(a.n_embd, a.n_ff))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    size = os.path.getsize(a.out)
    print(f"make-random-gguf: wrote {a.out}: qwen2 {a.n_embd}x{a.n_layer}, heads {a.n_head}/{a.n_head_kv}, "
          f"ff {a.n_ff}, vocab {n_vocab}, ctx {a.ctx}, {n_params / 1e6:.1f}M params, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
