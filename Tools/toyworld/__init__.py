"""The Shapes world: procedural scenes, captions and masks for Pareidolia's small demo model.

Modules: `palette` (colours, sizes, positions), `shapes` (shape geometry), `canvas`
(anti-aliased drawing), `characters` (people and cats, the named individuals), `captions`
(caption builder with word-to-object alignment), `scenes` (scene sampling and layout),
`world` (the public API), `detect` (the world's own detector) with `imageops` (numpy
morphology, components, blur), `preview` (contact sheets). See README.md.
"""
