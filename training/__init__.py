"""Models, losses, metrics, optimisers, the Ray Train loop and MLflow logging.

Implements Collaborative Experts, its ablations and TeachText as specified in SPEC-CE.md.
Models read tensors from the store reader only; they never see file paths.
"""
