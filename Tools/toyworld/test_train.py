"""Checks of the training chain's helpers (train.py and its stage modules) that need no work folder.

Run with `python -m pytest Tools/toyworld` (needs torch and diffusers; skipped without).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from toyworld import world  # noqa: E402


def test_individual_latents_hold_every_named_individual():
    """The decoder stage's individual renders: --ti-images of each named individual, encoded by the
    VAE given (latents 1/8 of the side) beside their pixels in [-1, 1], in world.NAMED's order."""
    from diffusers import AutoencoderKL
    from toyworld import stage_decoder, train
    vae = AutoencoderKL(block_out_channels=(8, 8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, norm_num_groups=4)
    args = train.parse_args(["decoder", "--ti-images", "2"])
    mean, std, x = stage_decoder.individual_latents(args, vae, "cpu")
    n = 2 * len(world.NAMED)
    assert mean.shape == std.shape == (n, 4, 16, 16) and x.shape == (n, 3, 128, 128)
    assert bool((std > 0).all()) and -1 <= float(x.min()) and float(x.max()) <= 1
    first = world.individual_images(list(world.NAMED)[0], 2)[0].image
    assert torch.allclose(x[0].permute(1, 2, 0), torch.from_numpy(first).float() / 127.5 - 1)
    last = list(world.NAMED)[-1]
    only = train.parse_args(["decoder", "--ti-images", "2", "--decoder-individuals", last])
    mean, std, x = stage_decoder.individual_latents(only, vae, "cpu")
    assert mean.shape == (2, 4, 16, 16)
    assert torch.allclose(x[0].permute(1, 2, 0), torch.from_numpy(world.individual_images(last, 2)[0].image).float() / 127.5 - 1)
    with pytest.raises(SystemExit, match="no named individual bob"):
        stage_decoder.individual_latents(train.parse_args(["decoder", "--decoder-individuals", "bob"]), vae, "cpu")


def test_widened_unet_predicts_what_the_narrow_one_did():
    """widen.py: every level widened by one factor gives the same noise prediction (to float
    rounding); one level alone comes close (only groups straddling a seam between factors move);
    factors that would drop a resnet's shortcut conv are refused."""
    from diffusers import UNet2DConditionModel
    from toyworld import stagekit, train, widen
    torch.manual_seed(0)
    cfg = stagekit.unet_kwargs(train.parse_args(["unet"]), 64, True)
    narrow = UNet2DConditionModel(**cfg).eval()
    with torch.no_grad():
        for p in narrow.parameters():      # zero-initialised convs too, so every path counts
            p.add_(torch.randn_like(p) * 0.05)
    x, t, c = torch.randn(2, 4, 16, 16), torch.tensor([10, 700]), torch.randn(2, 77, 64)

    def widened_output(factors):
        wide = UNet2DConditionModel(**widen.widened_config(dict(narrow.config), factors)).eval()
        wide.load_state_dict(widen.widened_state(narrow.state_dict(), dict(narrow.config), factors))
        with torch.no_grad():
            return wide(x, t, encoder_hidden_states=c).sample
    with torch.no_grad():
        y = narrow(x, t, encoder_hidden_states=c).sample
    scale = float(y.abs().max())
    assert float((widened_output([2, 2, 2]) - y).abs().max()) < 1e-5 * scale
    assert float((widened_output([3, 3, 3]) - y).abs().max()) < 1e-5 * scale
    err = float((widened_output([3, 1, 1]) - y).abs().max())
    assert 1e-5 * scale < err < 0.2 * scale
    with pytest.raises(ValueError, match="shortcut"):
        widen.widened_state(narrow.state_dict(), dict(narrow.config), [2, 1, 1])


def test_noisy_round_trip_is_repeatable_and_noise_free_at_zero():
    """vae_check.round_trip(noise=a): the decoder stage's check of latents off by a times their
    spread; the same images each time, the clean round trip at 0."""
    from diffusers import AutoencoderKL
    from toyworld import vae_check
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4).eval()
    imgs = np.stack([s.image for s in world.dataset("heldout", 2, size=32)])
    with torch.no_grad():
        clean, again = vae_check.round_trip(vae, imgs), vae_check.round_trip(vae, imgs, noise=0.0)
        noisy, noisy2 = vae_check.round_trip(vae, imgs, noise=0.3), vae_check.round_trip(vae, imgs, noise=0.3)
    assert clean.shape == imgs.shape and clean.dtype == np.uint8
    assert (clean == again).all() and (noisy == noisy2).all() and (noisy != clean).any()


def test_probe_scores_clean_renders_as_drawn_right_and_a_wrong_fur_as_a_miss():
    """probe.score counts as the measurement does: on the scenes themselves every object and
    character is found with its captioned attributes; a cat repainted to another fur keeps its
    class but misses the attribute."""
    from toyworld import palette, probe
    from toyworld.measure_pareidolia import captioned_attributes
    scenes = [s for s in world.dataset("heldout", 60)]
    counts, tally, misses = probe.score(scenes, [s.image for s in scenes])
    assert counts["objects"] > 20 and counts["recognised"] == counts["objects"]
    assert counts["characters"] > 5 and counts["by_class"] == counts["characters"]
    assert counts["attributes_ok"] == counts["with_attributes"] and not misses
    assert all(found == total for found, total in tally.values())
    cats = [s for s in world.dataset("heldout", 400) if any(
        o.kind == "cat" and "colour" in captioned_attributes(s, o) for o in s.objects)][:1]
    assert cats, "no held-out cat whose caption names its fur"
    s = cats[0]
    cat = next(o for o in s.objects if o.kind == "cat" and "colour" in captioned_attributes(s, o))
    image = s.image.copy()
    fur = np.array(cat.character.rgb)
    other = next(v for k, v in palette.FURS.items() if k != cat.character.colour)
    image[np.all(image == fur, axis=-1)] = other                     # repaint the fur
    counts, tally, misses = probe.score([s], [image])
    assert counts["by_class"] == counts["characters"] and counts["attributes_ok"] < counts["with_attributes"]


def test_stop_at_ends_a_phase_on_the_full_schedule_and_the_run_resumes_there(tmp_path):
    """--stop-at: the stage stops with a checkpoint at that step (not done), and a run without it
    resumes there and finishes at the stage's own end."""
    from toyworld import stagekit
    from toyworld import trainkit as tk
    model, seen = torch.nn.Linear(2, 2), []

    def body(step):
        seen.append(step)
        return 0.0, {}

    def run_once(stop_at):
        run = tk.StageRun(tmp_path, "toy", 10, ckpt_every=100, max_minutes=None, config={}, log=lambda *_: None,
                          stop_at=stop_at)
        objects = {"model": model}
        step = stagekit.train_loop(run, objects, run.resume(objects), body)
        return run, step, run.finish(step, objects)

    run, step, done = run_once(4)
    assert (step, done, run.stopped, seen) == (4, False, "step", [0, 1, 2, 3])
    run, step, done = run_once(4)   # run again: no step past it
    assert (step, done, run.stopped, seen) == (4, False, "step", [0, 1, 2, 3])
    run, step, done = run_once(None)
    assert (step, done, run.stopped, seen[4:]) == (10, True, None, [4, 5, 6, 7, 8, 9])


def test_object_weighted_mean_counts_object_pixels_more():
    """--unet-object-weight: no objects is the plain mean; an object pixel weighs 1 + w."""
    from toyworld.unet_parts import object_weighted_mean
    err = torch.rand(2, 4, 4)
    none = torch.zeros(2, 3, 4, 4)
    assert torch.allclose(object_weighted_mean(err, none, 3.0), err.mean(dim=(1, 2)))
    masks = none.clone()
    masks[0, 1, 2, 3] = 1.0                                     # one object pixel in sample 0
    got = object_weighted_mean(err, masks, 3.0)
    want0 = (err[0].sum() + 3.0 * err[0, 2, 3]) / (16 + 3.0)
    assert torch.allclose(got[0], want0) and torch.allclose(got[1], err[1].mean())


def test_decoder_seed_holds_the_decoder_alone(tmp_path):
    """A decoder's seed keeps the decoder and post_quant_conv only (the encoder is the VAE seed's):
    loading it changes those weights and leaves the encoder; an older seed holding the whole VAE
    still gives only its decoder; a seed missing some of them, or of another width, is refused."""
    from diffusers import AutoencoderKL
    from toyworld import seedweights
    from toyworld.stage_decoder import DECODER_PARTS

    def vae(width=8):
        return AutoencoderKL(block_out_channels=(width,) * 2, down_block_types=("DownEncoderBlock2D",) * 2,
                             up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4)
    torch.manual_seed(0)
    tuned, other = vae(), vae()
    path = tmp_path / "decoder.safetensors"
    seedweights.save_seed_weights(tuned, path, 700, parts=DECODER_PARTS)
    state, text = seedweights.read_seed(path)
    assert not text and state and all(k.startswith(DECODER_PARTS) for k in state)
    assert seedweights.seed_step(path) == 700
    encoder_before = other.encoder.conv_in.weight.clone()
    seedweights.load_seed_state(other, state, DECODER_PARTS, "test")
    assert torch.equal(other.encoder.conv_in.weight, encoder_before)
    assert torch.allclose(other.decoder.conv_out.weight, tuned.decoder.conv_out.weight.half().float())
    whole = vae().state_dict()
    seedweights.load_seed_state(other, whole, DECODER_PARTS, "test")
    assert torch.equal(other.encoder.conv_in.weight, encoder_before)
    with pytest.raises(SystemExit, match="do not fit"):
        seedweights.load_seed_state(other, {k: v for k, v in state.items() if "conv_out" not in k}, DECODER_PARTS, "test")
    with pytest.raises(SystemExit, match="do not fit"):
        seedweights.load_seed_state(other, vae(16).state_dict(), DECODER_PARTS, "test")
