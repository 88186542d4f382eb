"""Image-text matching: VSRN and DCPG (SPEC-DCPG.md).

Region features (36 x 2048 per image, the `regions` expert or imported SCAN precomp data)
and 5 captions per image; the VSE++ evaluation protocol lives in :mod:`.metrics`.
"""
