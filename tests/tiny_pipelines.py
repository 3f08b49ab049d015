"""Complete, tiny, random-weight diffusers pipelines built in code (no Hub access).

The configurations are those of diffusers' own pipeline tests (tests/pipelines/wan,
tests/pipelines/ltx); the one thing those tests fetch from the Hub, the tiny T5 and
its tokenizer, is replaced by a random-init (U)T5 encoder and a ``tokenizers``
word-level tokenizer, as in docs/gpu.md ("Testing without weights"). Saved with
``save_pretrained``, a pipeline is a few hundred KB that the real loading code
(``from_pretrained`` on the directory) reads back. Tests and ``scripts/bench gpu``
use them; they need the ``gpu`` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_SENTENCE = (
    "a the an of and in on at with cat dog bird fish horse city sea sky forest river night "
    "day sun moon rain snow red blue green gold light dark slow fast dance run fly swim "
    "video lighthouse boat car street mountain"
)
WORDS = _SENTENCE.split()
# Special tokens (a dict, so the linter does not take "<pad>" for a password).
SPECIAL = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}


def _tokenizer() -> Any:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL["unk_token"]))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        **SPECIAL,
        model_max_length=512,
    )


def _t5_fields() -> dict[str, Any]:
    return {
        "vocab_size": 64,
        "d_model": 32,
        "d_kv": 8,
        "d_ff": 37,
        "num_layers": 2,
        "num_heads": 4,
        "relative_attention_num_buckets": 8,
        "dropout_rate": 0.0,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "decoder_start_token_id": 0,
    }


def build_tiny_wan() -> Any:
    import torch
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    text_encoder = UMT5EncoderModel(UMT5Config(**_t5_fields())).eval()
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    return WanPipeline(
        tokenizer=_tokenizer(),
        text_encoder=text_encoder,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        transformer=transformer,
    )


def build_tiny_ltx() -> Any:
    import torch
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    text_encoder = T5EncoderModel(T5Config(**_t5_fields())).eval()
    transformer = LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=32,
    )
    vae = AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1),
        timestep_conditioning=False,
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    vae.use_framewise_encoding = False
    vae.use_framewise_decoding = False
    return LTXPipeline(
        tokenizer=_tokenizer(),
        text_encoder=text_encoder,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        transformer=transformer,
    )


def save_tiny_pipeline(kind: str, directory: Path) -> Path:
    """Build the tiny ``kind`` ("wan" or "ltx") pipeline and save it to ``directory``."""
    pipe = {"wan": build_tiny_wan, "ltx": build_tiny_ltx}[kind]()
    pipe.save_pretrained(str(directory))
    return directory


if __name__ == "__main__":
    # python -m tests.tiny_pipelines ROOT KIND...: saves ROOT/tiny-KIND for each kind.
    # Tests build the models in a child process (one torch import for all of them).
    import os
    import sys

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = Path(sys.argv[1])
    for kind in sys.argv[2:]:
        save_tiny_pipeline(kind, root / f"tiny-{kind}")
