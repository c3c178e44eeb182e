"""Checks of grounding.py: the words naming each object are found at their token positions, and
the losses fall as a word's attention moves onto its object.

Run with `python -m pytest Tools/toyworld` (needs torch and transformers; skipped without).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from toyworld import grounding, world  # noqa: E402

TOKENIZER = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "tiny-sd", "tokenizer")


@pytest.fixture(scope="module")
def tok():
    return transformers.CLIPTokenizer.from_pretrained(TOKENIZER)


def test_bits_mark_the_words_of_each_object(tok):
    for i in range(30):
        s = world.scene("train", i)
        for text, mentions in [(s.caption, s.mentions), *world.place_caption_variants(s, 3)]:
            ids, bits = grounding.caption_bits(tok, text, mentions)
            # the same ids as SD 1.x tokenization of the whole caption
            ref = tok([text], padding="max_length", max_length=77, truncation=True).input_ids[0]
            assert ids.tolist() == ref, text
            _, positions = grounding.word_token_positions(tok, text)
            expected = np.zeros(77, np.uint8)
            for m in mentions:
                if m.kind in grounding.GROUND_KINDS:
                    # the positions hold the word's own tokens
                    word = "".join(tok.convert_ids_to_tokens([int(ids[p]) for p in positions[m.word_index]]))
                    assert word.removesuffix("</w>") == m.word, (text, m, word)
                    for p in positions[m.word_index]:
                        expected[p] |= sum(1 << o for o in m.object_ids)
            # exactly those: not "the", "left", "a"
            assert bits.tolist() == expected.tolist(), text


def test_place_variants_are_place_captions():
    s = world.scene("train", 7)
    assert [t for t, _ in world.place_caption_variants(s, 3, 0.9)] == world.place_captions(7, 3, 0.9)


def _maps(inside: float, b=2, heads=2, r=8):
    """Attention maps where token 1 puts `inside` of its mass on the top-left quarter."""
    probs = torch.full((b * heads, r * r, 77), 1.0 / 77)
    quarter = torch.zeros(r, r)
    quarter[: r // 2, : r // 2] = 1
    q = quarter.flatten()
    col = inside * q / q.sum() + (1 - inside) * (1 - q) / (1 - q).sum()
    probs[:, :, 1] = col * 0.5             # half of each pixel's attention on token 1 over the picture
    return [(heads, probs)]


def test_losses_fall_as_attention_moves_inside():
    masks = torch.zeros(2, grounding.MAX_OBJECTS, 16, 16)
    masks[:, 0, :8, :8] = 1                # object 0: the top-left quarter
    bits = torch.zeros(2, 77, dtype=torch.uint8)
    bits[:, 1] = 1                         # token 1 names object 0
    losses = [grounding.grounding_losses(_maps(f), masks, bits) for f in (0.1, 0.5, 0.9)]
    tokens = [t.item() for t, _ in losses]
    assert tokens[0] > tokens[1] > tokens[2]
    assert abs(tokens[2] - 0.1 ** 2) < 1e-4   # (1 - 0.9)^2
    pixels = [p.item() for _, p in losses]
    assert pixels[0] > pixels[1] > pixels[2]
    # no grounded token (a dropped caption): no loss
    t, p = grounding.grounding_losses(_maps(0.1), masks, torch.zeros_like(bits))
    assert t.item() == 0 and p.item() == 0


def test_capture_sees_every_cross_attention_layer():
    from diffusers import UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor
    unet = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(32, 64), cross_attention_dim=16, attention_head_dim=8,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), norm_num_groups=8)
    unet.set_attn_processor(AttnProcessor())
    cap = grounding.AttentionCapture(unet)
    x, ctx = torch.randn(1, 4, 16, 16), torch.randn(1, 77, 16)
    unet(x, 10, encoder_hidden_states=ctx)
    assert cap.take() == []                 # inactive: nothing kept
    cap.active = True
    unet(x, 10, encoder_hidden_states=ctx)
    maps = cap.take()
    n_cross = sum(name.endswith("attn2") for name, _ in unet.named_modules())
    assert len(maps) == n_cross > 0
    for heads, probs in maps:
        assert probs.shape[-1] == 77
        assert torch.allclose(probs.sum(-1), torch.ones(()), atol=1e-5)


def test_ground_weights_follow_their_steps():
    """The grounding weights in force at a step: off before the first change, then each change's
    pair; a change to 0, 0 turns the losses off; lists of unequal length are refused."""
    diffusers = pytest.importorskip("diffusers")  # noqa: F841 (train.py's stages import it)
    from toyworld import train, unet_parts
    args = train.parse_args(["unet", "--unet-ground-weight", "0.05,0.025,0", "--unet-ground-pixel-weight",
                             "0.01,0.005,0", "--unet-ground-from", "100,200,300"])
    assert unet_parts.ground_weights(args, 99) is None
    assert unet_parts.ground_weights(args, 100) == (0.05, 0.01)
    assert unet_parts.ground_weights(args, 250) == (0.025, 0.005)
    assert unet_parts.ground_weights(args, 300) is None
    args.unet_ground_from = (100,)
    with pytest.raises(SystemExit):
        unet_parts.ground_weights(args, 150)


def test_repeat_draws_some_scenes_more_often():
    """--unet-repeat two=2,characters=3: an epoch lists each scene with two things twice, each with a
    person or cat three times (the larger where both hold), the others once, and draws each exactly
    so often; cats=N counts scenes with a cat alone; without it the world's own order stays; a bad
    spec is refused."""
    pytest.importorskip("diffusers")
    from toyworld import train, unet_parts
    masks = torch.zeros(6, grounding.MAX_OBJECTS, 16, 16)           # [N, O, 16, 16]
    masks[:, 0, 2:5, 2:5] = 1
    masks[[1, 4], 1, 9:12, 9:12] = 1                                  # scenes 1 and 4 hold two things
    captions = ["a red star", "a red star and a blue circle", "a cat", "a green heart",
                "a person and a black square", "a yellow circle at the top"]
    args = train.parse_args(["unet", "--unet-repeat", "two=2,characters=3", "--unet-batch", "1"])
    order = unet_parts.focus_batch_order(args, masks, captions)
    drawn = np.concatenate([order(s) for s in range(11)])             # one epoch: 1 + 2 + 3 + 1 + 3 + 1 draws
    assert np.bincount(drawn, minlength=6).tolist() == [1, 2, 3, 1, 3, 1]
    cats = train.parse_args(["unet", "--unet-repeat", "characters=2,cats=4", "--unet-batch", "1"])
    order = unet_parts.focus_batch_order(cats, masks, captions)     # the cat's scene 4 times, the person's twice
    drawn = np.concatenate([order(s) for s in range(10)])
    assert np.bincount(drawn, minlength=6).tolist() == [1, 1, 4, 1, 2, 1]
    assert unet_parts.focus_batch_order(train.parse_args(["unet"]), masks, captions) is None
    with pytest.raises(SystemExit):
        train.parse_args(["unet", "--unet-repeat", "shapes=2"])
