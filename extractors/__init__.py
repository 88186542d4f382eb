"""Where a video becomes features: decoding and sampling plans, and one module per expert.

Owns the Expert interface (``videxperts.extractors.base``), the registry that builds experts from YAML
profiles, the decode-once reader (one decode of a video serves every expert), and the caption
text encoders. Experts never open files; only the decoder does.
"""
