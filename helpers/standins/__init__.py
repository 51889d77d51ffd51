"""Generated stand-ins in the official formats, for tiny mode and the tests.

One sub-module per resource: ``milnce`` (a TF-Hub SavedModel), ``mmv`` (checkpoint pickles),
``ucf101`` (a mini-UCF101 in the official layout). Stand-ins have random weights: anything
computed with them must be shown under the tiny-mode banner (``helpers.report.banner``).
"""
