"""The word tokenizer: round trips on every caption phrasing, padding and masks, added tokens,
JSON save/load, and the truncation warning that quotes what was cut."""

import pytest
import torch

from hwaksan.data.shapes import ShapesConfig, sample_scene, shapes_vocabulary
from hwaksan.errors import HwaksanError
from hwaksan.nets.text.tokenizer import WordTokenizer


@pytest.fixture(scope="module")
def captions() -> list[str]:
    config = ShapesConfig(min_objects=1, max_objects=3)
    return [c for seed in range(300) for c in sample_scene(seed, config).captions]


def test_every_caption_round_trips_with_known_words_and_fits_32_tokens(captions):
    tok = WordTokenizer(shapes_vocabulary())
    for caption in captions:
        ids = tok.encode(caption)
        assert tok.decode(ids) == caption
        assert 3 not in ids, caption  # no <unk>
        assert len(ids) + 2 <= 32, caption  # mini-CLIP's max_length holds <bos> + words + <eos>


def test_the_shapes_vocabulary_splits_as_the_tokenizer_splits():
    """data.shapes builds the vocabulary with its own copy of the word rule (data never imports
    nets): every word must come back from the tokenizer's split as itself."""
    words = shapes_vocabulary()
    tok = WordTokenizer(words)
    assert all(tok.split(w) == [w] for w in words)


def test_rows_are_bos_words_eos_then_padding_with_a_matching_mask():
    tok = WordTokenizer(shapes_vocabulary())
    ids, mask = tok(["a red circle", "two shapes: a blue box and a green disk"], max_length=14)
    assert ids.shape == mask.shape == (2, 14) and mask.dtype == torch.bool
    words = tok.encode("a red circle")
    assert ids[0].tolist() == [1, *words, 2] + [0] * (14 - len(words) - 2)
    assert mask.sum(1).tolist() == [5, 12]  # <bos> + 3 words + <eos>; <bos> + 10 tokens + <eos>
    assert torch.equal(mask, ids != 0)
    assert tok.decode(ids[1]) == "two shapes: a blue box and a green disk"


def test_unknown_words_map_to_unk_and_case_is_folded():
    tok = WordTokenizer(["red", "circle"])
    assert tok.encode("A RED Circle") == [3, tok.ids["red"], tok.ids["circle"]]


def test_added_tokens_get_new_ids_match_verbatim_and_survive_json(tmp_path):
    tok = WordTokenizer(shapes_vocabulary())
    n = len(tok)
    assert tok.add_tokens(["<s*>", "sks"]) == [n, n + 1]
    assert len(tok) == n + 2
    assert tok.split("a <s*>, Red sks circle") == ["a", "<s*>", ",", "red", "sks", "circle"]
    assert tok.decode(tok.encode("a <s*> left of a sks circle")) == "a <s*> left of a sks circle"
    with pytest.raises(HwaksanError):
        tok.add_tokens(["red"])  # already a word
    with pytest.raises(HwaksanError):
        tok.add_tokens(["<s*>"])  # already added
    tok.save(tmp_path / "tokenizer.json")
    again = WordTokenizer.load(tmp_path / "tokenizer.json")
    assert again.vocab == tok.vocab and again.added_tokens == ["<s*>", "sks"]
    prompt = "a <s*> to the left of a sks square"
    assert torch.equal(again([prompt], 16)[0], tok([prompt], 16)[0])


def test_a_corrupt_tokenizer_file_is_a_user_error(tmp_path):
    (tmp_path / "t.json").write_text("{not json")
    with pytest.raises(HwaksanError, match="tokenizer"):
        WordTokenizer.load(tmp_path / "t.json")


def test_long_prompts_are_cut_with_a_warning_quoting_the_cut_words():
    tok = WordTokenizer(shapes_vocabulary())
    prompt = "a red circle to the left of a blue square above a green triangle"
    with pytest.warns(UserWarning, match="cut: 'the left of a blue square above a green triangle'"):
        ids, mask = tok([prompt, "a red circle"], max_length=6)
    assert tok.decode(ids[0]) == "a red circle to"  # 4 words + <bos> + <eos>
    assert ids[0, -1] == 2 and mask[0].all()
