"""Video-text retrieval: Collaborative Experts (CE), its ablations and TeachText (SPEC-CE.md).

The task (:mod:`.task`) plugs these into the training harness: models (:mod:`.models`), the
ranking and distillation losses, the R@k/MdR/MnR/Geom metrics, the split data and sampler.
"""
