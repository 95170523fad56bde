"""Tiny models of every architecture family scrub bridges, built offline.

Each family is a `transformers` config (2 layers, d_model 32, 4 query heads,
a 16-token vocabulary), a random model from it, saved with `save_pretrained`
(with a tiny word-level tokenizer, which Llama-, Mistral- and OLMo-2-family
bridges need to boot) and booted with `TransformerBridge.boot_transformers(
folder, hf_model=...)`. `initializer_range=0.2` keeps attention patterns far
from uniform, so a missing rotary embedding or a wrong mask is a large error.

Import this before anything imports huggingface_hub (conftest.py does), so the
offline switches are read.
"""

from __future__ import annotations

import functools
import os
import pathlib
import tempfile
import warnings

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

VOCAB = 16
INIT = 0.2


def _llama_like(config_class, **settings):
    base = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=4,
                intermediate_size=48, vocab_size=VOCAB, max_position_embeddings=32, initializer_range=INIT,
                tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=3)
    base.update(settings)
    return config_class(**base)


def _configs():
    import transformers as T

    special = dict(bos_token_id=1, eos_token_id=2, pad_token_id=3)
    return {
        "gpt2": (lambda: T.GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=VOCAB, n_positions=32,
                                      initializer_range=INIT, **special), T.GPT2LMHeadModel),
        "neox": (lambda: T.GPTNeoXConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=4,
                                         intermediate_size=48, vocab_size=VOCAB, max_position_embeddings=32,
                                         rotary_pct=0.5, use_parallel_residual=True, initializer_range=INIT,
                                         **special), T.GPTNeoXForCausalLM),
        "gptj": (lambda: T.GPTJConfig(n_layer=2, n_embd=32, n_head=4, vocab_size=VOCAB, n_positions=32,
                                      rotary_dim=4, initializer_range=INIT, **special), T.GPTJForCausalLM),
        "llama_gqa": (lambda: _llama_like(T.LlamaConfig, num_key_value_heads=2), T.LlamaForCausalLM),
        "llama_mqa": (lambda: _llama_like(T.LlamaConfig, num_key_value_heads=1), T.LlamaForCausalLM),
        "mistral": (lambda: _llama_like(T.MistralConfig, num_key_value_heads=2, sliding_window=3),
                    T.MistralForCausalLM),
        "qwen2": (lambda: _llama_like(T.Qwen2Config, num_key_value_heads=2, use_sliding_window=True,
                                      sliding_window=3, max_window_layers=1), T.Qwen2ForCausalLM),
        "gemma2": (lambda: _llama_like(T.Gemma2Config, num_key_value_heads=2, head_dim=8, sliding_window=3,
                                       query_pre_attn_scalar=16, attn_logit_softcapping=2.0,
                                       final_logit_softcapping=1.5, tie_word_embeddings=True),
                   T.Gemma2ForCausalLM),
        "olmo": (lambda: _llama_like(T.OlmoConfig, clip_qkv=0.3), T.OlmoForCausalLM),
        "olmo2": (lambda: _llama_like(T.Olmo2Config), T.Olmo2ForCausalLM),
        "qwen3": (lambda: _llama_like(T.Qwen3Config, num_key_value_heads=2, head_dim=8), T.Qwen3ForCausalLM),
        "gemma3": (lambda: _llama_like(T.Gemma3TextConfig, num_key_value_heads=2, head_dim=8, sliding_window=3,
                                       query_pre_attn_scalar=16, tie_word_embeddings=True,
                                       layer_types=["sliding_attention", "full_attention"]), T.Gemma3ForCausalLM),
    }


FAMILIES = ("gpt2", "neox", "gptj", "llama_gqa", "llama_mqa", "mistral", "qwen2", "gemma2", "olmo", "olmo2", "qwen3",
            "gemma3")


def tokenizer(vocab_size: int = VOCAB):
    """A word-level tokenizer: <unk> <bos> <eos> <pad>, then t4, t5, ..."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<bos>": 1, "<eos>": 2, "<pad>": 3, **{f"t{i}": i for i in range(4, vocab_size)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>")


def hf_model(family: str, seed: int = 0):
    import torch

    make_config, model_class = _configs()[family]
    torch.manual_seed(seed)
    return model_class(make_config()).eval()


def save(family: str, folder: pathlib.Path, seed: int = 0):
    """Write the family's tiny model and tokenizer to `folder` (a save_pretrained folder); returns the model."""
    model = hf_model(family, seed)
    model.save_pretrained(folder)
    tokenizer().save_pretrained(folder)
    return model


@functools.lru_cache(maxsize=None)
def bridge(family: str, seed: int = 0):
    """The family's tiny model as a TransformerBridge (one per family and seed per test session)."""
    from transformer_lens.model_bridge import TransformerBridge

    with tempfile.TemporaryDirectory(prefix=f"scrub-{family}-") as folder:
        model = save(family, pathlib.Path(folder), seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return TransformerBridge.boot_transformers(folder, hf_model=model, device="cpu").eval()
