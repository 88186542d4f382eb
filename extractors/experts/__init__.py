"""One module per expert family; build them through :mod:`videxperts.extractors.registry`, not directly.

CNN experts (scene, inst, i3d, r2p1d, audio) share :mod:`videxperts.extractors.experts._frames`;
OCR, face and speech wrap offline engines. Importing this package imports no model code.
"""
