"""Tiny random models of three Hugging Face architectures, for docs/your-model.md.

    python docs/your-model/make_models.py     # writes docs/your-model/models/{gpt2,pythia,llama}

Each is a `transformers` model built from a config (random weights, 2 layers)
and saved with `save_pretrained`, with a small word-level tokenizer beside it
(TransformerBridge loads one; scrub itself only feeds token ids). A real model
is used the same way: its save_pretrained folder, or its name once it is in
the local Hugging Face cache.
"""

import os
import pathlib

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing here needs the network

import torch  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402

MODELS = pathlib.Path(__file__).resolve().parent / "models"
VOCAB = 100
SPECIAL = dict(bos_token_id=1, eos_token_id=2)  # the tokenizer's ids
CONFIGS = {
    "gpt2": transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=VOCAB, n_positions=64, **SPECIAL),
    "pythia": transformers.GPTNeoXConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                                         intermediate_size=256, vocab_size=VOCAB, max_position_embeddings=64,
                                         rotary_pct=0.25, use_parallel_residual=True, **SPECIAL),
    "llama": transformers.LlamaConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                                      num_key_value_heads=2, intermediate_size=128, vocab_size=VOCAB,
                                      max_position_embeddings=64, **SPECIAL),
}


def tokenizer() -> transformers.PreTrainedTokenizerFast:
    vocab = {"<unk>": 0, "<bos>": 1, "<eos>": 2, "<pad>": 3, **{f"t{i}": i for i in range(4, VOCAB)}}
    words = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=words, unk_token="<unk>", bos_token="<bos>",
                                                eos_token="<eos>", pad_token="<pad>")


if __name__ == "__main__":
    transformers.utils.logging.disable_progress_bar()
    for name, config in CONFIGS.items():
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(config)
        model.save_pretrained(MODELS / name)
        tokenizer().save_pretrained(MODELS / name)
        print(f"wrote {MODELS.relative_to(pathlib.Path.cwd())}/{name}: {type(model).__name__}, "
              f"{sum(p.numel() for p in model.parameters()):,} parameters")
