"""Which version of the world scenes are drawn in.

A version changes what scenes look like (so the held-out captions and every cache of rendered
scenes change with it). The shipped demo model was trained in `SHIPPED`; `TOYWORLD_VERSION=N`
in the environment draws version N instead, for training the next model before it ships (a
model must be measured in the world it learned).

    1  the first world
    2  no colour-shape pairs held out of train (HOLDOUT_PAIRS empty)
    3  larger characters: heads 0.36 / 0.44 of the width (were 0.28 / 0.36), so a cat's ears,
       stripes and a hat's colour cover latent pixels of their own (a head was ~5 of 16)
"""

from __future__ import annotations

import os

SHIPPED = 2
KNOWN = (2, 3)


def current() -> int:
    raw = os.environ.get("TOYWORLD_VERSION", "").strip()
    if not raw:
        return SHIPPED
    if not raw.isdigit() or int(raw) not in KNOWN:
        raise SystemExit(f"TOYWORLD_VERSION={raw!r}: expected one of {', '.join(map(str, KNOWN))}")
    return int(raw)


VERSION = current()
