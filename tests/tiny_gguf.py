"""A tiny random Qwen2 causal LM written as a GGUF file, the format the offline Qwen2.5 models ship in.

The file carries what transformers reads from a real Qwen2.5 GGUF: the `qwen2` hyper-parameters, a
byte-level BPE tokenizer (`gpt2` model, `qwen2` pre-tokenizer) with Qwen's special tokens and ids in
the same roles (`<|im_end|>` the eos, `<|endoftext|>` the bos and padding), and Qwen2.5's chat template
(its branch without tools, verbatim). Weights are random float32 (seeded), with the output layer
tied to the embeddings. Only good for plumbing and for comparing a computation with its reference.
"""

from __future__ import annotations

from pathlib import Path

# Qwen2.5-Instruct's chat template without its tool-calling branches (the default system prompt,
# ChatML turns); `mmrag.generate.stopping.template_stops` reads `<|im_end|>` from it.
QWEN2_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) "
    "or (message.role == 'assistant') %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
QWEN2_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
MERGES = ("Ġ t", "h e", "Ġt he", "i s")


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for the bytes 0..255 (GPT-2's table)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    out: dict[int, str] = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in out:
            out[b] = chr(256 + extra)
            extra += 1
    return [out[b] for b in range(256)]


def tiny_qwen2_gguf(path: str | Path, hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """Write a random 2-layer Qwen2 (4 heads, 2 KV heads, tied output) with its tokenizer as GGUF."""
    import numpy as np
    from gguf import GGUFWriter, TokenType

    tokens = [*byte_symbols(), *(m.replace(" ", "") for m in MERGES), *QWEN2_SPECIALS]
    types = [TokenType.NORMAL] * (len(tokens) - len(QWEN2_SPECIALS)) + [TokenType.CONTROL] * 3
    ids = {t: i for i, t in enumerate(tokens)}
    heads, kv_heads, ffn = 4, 2, 2 * hidden
    kv = hidden // heads * kv_heads
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    w = GGUFWriter(str(out), "qwen2")
    w.add_name("tiny-qwen2")
    w.add_block_count(layers)
    w.add_context_length(256)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(1_000_000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(list(MERGES))
    w.add_eos_token_id(ids["<|im_end|>"])
    w.add_bos_token_id(ids["<|endoftext|>"])
    w.add_pad_token_id(ids["<|endoftext|>"])
    w.add_add_bos_token(False)
    w.add_chat_template(QWEN2_CHAT_TEMPLATE)
    rng = np.random.default_rng(seed)

    def rand(*shape: int) -> np.ndarray:  # numpy shape is (out, in), as llama.cpp writes it
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    w.add_tensor("token_embd.weight", rand(len(tokens), hidden))
    w.add_tensor("output_norm.weight", np.ones(hidden, dtype=np.float32))
    for i in range(layers):
        b = f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", np.ones(hidden, dtype=np.float32))
        for name, rows in (("attn_q", hidden), ("attn_k", kv), ("attn_v", kv)):
            w.add_tensor(b + name + ".weight", rand(rows, hidden))
            w.add_tensor(b + name + ".bias", rand(rows))
        w.add_tensor(b + "attn_output.weight", rand(hidden, hidden))
        w.add_tensor(b + "ffn_norm.weight", np.ones(hidden, dtype=np.float32))
        w.add_tensor(b + "ffn_gate.weight", rand(ffn, hidden))
        w.add_tensor(b + "ffn_up.weight", rand(ffn, hidden))
        w.add_tensor(b + "ffn_down.weight", rand(hidden, ffn))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out
