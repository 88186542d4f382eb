"""The jobs a user runs: dataset preparation, extraction, training, evaluation, reports.

Pipelines wire ``extractors``, ``storage``, ``training`` and ``cluster`` together and own
nothing else; the ``videxperts`` command line lives here (``videxperts.pipelines.cli``), one module per
subcommand under ``videxperts.pipelines.commands``.
"""
