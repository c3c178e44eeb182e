"""train.py's presets: the step targets and option values of each preset (cpu, gpu, smoke), with
the history of how the cpu preset's recipe came to be. train.parse_args applies a preset's options
where the option was left at its default; stagekit.stage_steps reads its step targets."""

# Step targets: an explicit --<stage>-steps wins, then --steps, then the preset's.
PRESETS = {
    # the 2-core CPU budget (2.5 h): see README.md, "Training the demo model"
    # VAE: whole scenes from the first step (crops left GroupNorm and the mid-block attention on
    # crop statistics), 128 channels at the two low resolutions (+17% time for 3x the parameters,
    # measured), lr 1e-3 (the 5e-4 run had barely begun to restore colours when it stopped).
    # Text width 64 (was 96): the vocabulary table (49 408 rows) is stored twice, in the model's
    # text encoder and in the demo CLIP, and at 96 wide those two copies alone took 19 MB of the
    # 40 MB budget the larger VAE needs room in.
    # Then 2 500 refining steps: colours had shifted by up to 13 levels and a speck sat at one
    # fixed place on grass in 59 of 200 held-out decodes after the first 4 000 (after 1 000
    # refining steps: 1 of 200, 97.4% recognised, shifts 6–9 levels; after 1 500: 2 of 200, one
    # faint pixel each at the top centre, 97.1%, 4–8 levels; after 2 500: 1 of 200, 97.7%). The
    # last 500 steps weigh each scene's 4 worst background pixels at 4 (the peak boost): 98.4%,
    # no speck in 200, shifts 5–8 levels. The run these weights come from stretched its refining
    # schedule three times: to 1 500 steps at step 5 000, to 2 500 at 5 500, to 3 000 at 6 500.
    # UNet: 4 500 steps gave blobs (7% of objects recognised); 12 000 steps 38% (64 held-out
    # captions), but the background followed the mean of the starting noise, not the caption
    # (see --unet-offset-noise), so from step 12 000 on, offset noise 0.15 and a cosine over
    # 30 000 steps (the run these weights come from restarted its schedule there: from 12 000 the
    # learning rate is the 30 000-step cosine's).
    # Then the curve stayed flat from ~22 000 to the end at 30 000 (objects 50-57%) and the
    # captions' places were ignored: "a red circle on the left / right / at the top" drew the same
    # 16 pictures, its place decided by the seed. The frozen CLIP text tower gave "left" and
    # "right" (and "circle" and "square") almost the same vectors, so from 30 000 the text
    # encoder learns with the UNet at half its rate, and low-frequency "pyramid" noise hides the
    # layout that x_T otherwise gives away (see pyramid_noise), and 3 of 4 samples take one of 3
    # more captions of their scene that say where things are (90%; the world's own say it for
    # 31% of objects), on a 50 000-step cosine. After 3 257 steps of these the text encoder kept
    # "left" and "right" 0.35 apart (was 0.22) and "square" and "circle" 0.45 (0.19), yet the
    # first x0 estimate (t = 999) of "a red circle on the left / right / at the top" put the red
    # in the centre all the same: min-SNR weighs an x0 error there by 0.005, so from 33 257 the
    # weight has a floor of 1 at high noise (--unet-snr-floor). Shipped at 43 535: objects 56.7 ->
    # 61.8%, placed as captioned 8.1 -> 21.3%, attributes 37.8 -> 51.1%, DAAM peak 53.2 -> 57.6%
    # (200 held-out captions). One object alone was then placed where its caption said in 35 of
    # 40 ("a red circle on the left / ... / in the centre", 8 seeds each), but two were not:
    # found 85% of lone objects against 59% of objects in pairs (37% where the caption relates
    # them: "left of", "above"), colours and shapes swapped between the two, the second one's
    # place ignored. Who goes where is settled at the 4x4 level, which had one transformer (the
    # mid block's), so from 43 535 the lowest level has transformers too, down and up (+1.04 M
    # parameters, their output zero at first: the grown UNet draws the same pictures; diffusers
    # and Pareidolia agree on it to the pixel), and the learning rate is a second cosine from
    # 1.5e-4 to 51 500 (the first, 50 000 long, was at 8.5e-5 there). The run these weights come
    # from went on to 44 461 first, grew there with a restart at 3e-4, and then trained with
    # torch.compile, whose gradients were wrong (see README.md): its objects fell from 68% to 45%
    # (64 held-out captions), so it went back to the 43 535 seed (seeds/unet.safetensors, fresh optimizer).
    # TI: 200 steps drew alex in 4 of 8 and cora in 1 of 8 samples of "a photo of <name>"; 1 000
    # steps on the same UNet (step 19 147) 5 of 8 and 4 of 8, about 2 minutes a token.
    # At 51 500: 200 held-out captions through Pareidolia found 62.6% of objects, 30.9% of those
    # whose caption says where in that place; on 64 train captions 75.8% / 43.8% against 64.8% /
    # 40.6% on held-out ones, so not overfitting much: under-trained. Blue stars and purple
    # squares (world.HOLDOUT_PAIRS, never in train, a ninth of the held-out objects) were found
    # 5 times in 27 (68% of the other shapes), so from 51 500 the world holds them out no more, and a third cosine from
    # 1.5e-4 runs to 61 000.
    # At 61 000 (objects 73.5%) a word's DAAM map peaked inside its object for 48% of objects and
    # fell as training went on (56% at 51 500): the map of "star" in "a large red star in the
    # centre" was flat, 4-9 of 9 everywhere, lowest on the star; the 16x16 layers attended to the
    # padding tokens, which the causal text encoder fills with the whole caption. Two objects each
    # with its place were drawn as captioned in 2 of 23 captions. So from 61 412 (where the run
    # these weights come from switched it on) TokenCompose's grounding losses teach each word that
    # names an object to attend inside it (grounding.py), and a fourth cosine from 1.5e-4 runs to 69 000.
    # There objects had slid on the 8 held-out captions of the learning curve (0.81 at 64 000, 0.56
    # at 69 000) as the token loss fell: from 69 000 the grounding weights are halved (0.025, 0.005),
    # the check takes 32 captions, and a fifth cosine from 1.5e-4 runs to 80 000. The VAE smudged
    # faces (after its round trip alex was found in 4 renders of 16, a character's captioned
    # attribute in 67%): the decoder stage tunes its decoder alone, 1 000 steps, encoder and latents kept.
    "cpu": dict(steps=dict(clip=800, vae=7000, decoder=1000, unet=80000, ti=1500),
                opts=dict(scenes=10000, vae_full_from=0, vae_full_batch=8, vae_lr=1e-3,
                          vae_channels="32,64,128,128", text_hidden=64, vae_refine_from=4000,
                          vae_object_weight=4.0, vae_peak_weight=1.0, vae_peak_boost_from=6500,
                          unet_offset_noise=0.15, unet_offset_noise_from=12000,
                          unet_text_lr_ratio=0.5, unet_text_from=30000,
                          unet_pyramid_noise=0.6, unet_pyramid_from=30000,
                          unet_place_captions=3, unet_place_from=30000,
                          unet_snr_floor=1.0, unet_snr_floor_from=33257, unet_cosine_steps=50000,
                          unet_deep_attention_from=43535, unet_restart_from=(43535, 51500, 61000, 69000),
                          unet_restart_lr=(1.5e-4, 1.5e-4, 1.5e-4, 1.5e-4), unet_ground_weight=(0.05, 0.025),
                          unet_ground_pixel_weight=(0.01, 0.005), unet_ground_from=(61412, 69000),
                          sample_captions=32, sample_every=1000)),
    # a GPU machine: the same shippable architecture, bigger batches and more steps (untested)
    "gpu": dict(steps=dict(clip=6000, vae=6000, decoder=1000, unet=30000, ti=1000),
                opts=dict(scenes=40000, clip_batch=256, vae_batch=32, unet_batch=128,
                          unet_lr=1e-3, sample_every=2000, device="cuda")),
    # seconds: tiny data and a handful of steps per stage, default architectures
    "smoke": dict(steps=dict(clip=3, vae=3, decoder=2, unet=3, ti=2),
                  opts=dict(scenes=48, eval_scenes=8, ckpt_every=2, sample_every=2,
                            sample_captions=2, sample_steps=2, scale_samples=16, ti_images=4,
                            ti_eval=1, measure_captions=2, measure_seeds=1, clip_extra=2)),
}
