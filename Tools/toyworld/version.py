"""Which version of the world scenes are drawn in.

A version changes what scenes look like (so the held-out captions and every cache of rendered
scenes change with it). The shipped demo model was trained last in `SHIPPED` (from version 2 on,
each version going on from the last one's weights: `retrain.sh`); `TOYWORLD_VERSION=N`
in the environment draws version N instead, for training the next model before it ships (a
model must be measured in the world it learned).

    1  the first world
    2  no colour-shape pairs held out of train (HOLDOUT_PAIRS empty)
    3  (larger characters: tried, reverted; see the README's "Characters")
    4  characters with a few attributes: round heads, no hat or a top hat, plain faces and dot
       eyes; cats plain or striped with dot eyes (koko keeps his big eyes). What the targets
       read — class, skin, hat colour, fur, stripes — stays; caps, bows, freckles, face paint,
       spots and eye styles go
    5  version 4 with the two identity attributes a 16×16 latent lost made learnable: a person's
       skin is said in most captions ("a tan person", as a cat's fur is), since the UNet never
       heard it and drew peach people in 1 of 16 images; a cat's forehead bars are drawn wider,
       farther apart and darker (0.08 of the head wide, 0.17 of its width apart, 0.45 of the fur's
       brightness; were 0.06, 0.12 and 0.7), since the old ones were finer than a latent pixel
       and the UNet drew them on 0–3 of 16 striped cats even when asked
    6  version 5 with alex's and cora's hat colours swapped (alex: peach skin, red top hat; cora:
       tan skin, blue top hat), since the VAE's round trip kept a peach face under a dark hat on
       the light background in 6–7 of 16 renders (green, blue, black hats), which capped alex
       alone below the target whatever the UNet drew, and under a red or yellow hat in 16 of 16
       (a tan face: 12–16 of 16 under any hat). Randomly drawn people never take a named
       identity, so the scenes change a little beyond the two individuals
    7  version 6 with random cats that may be grey and striped (koko's fur and stripes; never his
       big eyes). "a grey striped cat" drew stripes in 1 of 16 images and koko's two-vector token
       in 2 of 16, while people composed any skin with any hat: a cat's fur and stripes share one
       region, so the UNet never learned stripes apart from the brown and ginger cats that wore
       them (the UNet's tenth cosine, 114 000 to 119 000)
    8  version 7 with a cat's ears in its fur colour alone (the inner ear was 1.18 times lighter).
       "a brown cat on grass" came out with round red ears in 15 of 16 images, which the detector
       reads as a brown person under a red hat: 6 of the probe's 16 misses were brown cats, while
       the VAE's round trip alone kept brown cats in 13 of 16 (the UNet's eleventh cosine, 119 000
       to 128 000: the shipped model)
    9  version 8 with a tabby's forehead bars bolder: 0.14 of the head wide, 0.22 of its width
       apart, 0.25 of the fur's brightness (were 0.08, 0.17, 0.45: three to four pixels, a third
       to half of a latent pixel). The UNet drew "a grey striped cat" striped in 20 of 64 seeds
       and koko's token found him in 4 of 16: his renders came out grey, without bars. A bar's
       weight in the noise loss grows with its area and the square of its contrast, about 3x
       here. Tried, not shipped: koko 5 of 16, and the near-black bars blurred into a band the
       detector reads as a black hat (README, "Tried")
   10  version 8 with the tabby's bars 0.12 of the head wide, 0.22 apart, 0.35 of the fur's
       brightness, and short of the head's outline (from 0.36 to 0.16 of its height above the
       centre; were from its top, 0.5, to 0.2): world 9's bars, blurred by the UNet into a band
       that reached the outline, split the fur in two or read as a black hat. About 1.9x version
       8's weight in the noise loss
"""

from __future__ import annotations

import os

SHIPPED = 8
KNOWN = (2, 4, 5, 6, 7, 8, 9, 10)


def current() -> int:
    raw = os.environ.get("TOYWORLD_VERSION", "").strip()
    if not raw:
        return SHIPPED
    if not raw.isdigit() or int(raw) not in KNOWN:
        raise SystemExit(f"TOYWORLD_VERSION={raw!r}: expected one of {', '.join(map(str, KNOWN))}")
    return int(raw)


VERSION = current()
