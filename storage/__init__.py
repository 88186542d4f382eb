"""The Zarr feature store, manifests (parquet) and the training-side reader.

Owns every byte at rest: per-expert variable-length feature sequences with their status
(done / failed / quarantined) and provenance, caption token features, lock-free concurrent
writers with a commit point, resume scans, and fast padded reads for training.
"""
