"""Generated stand-ins in the official formats, for tiny mode and the tests.

One sub-module per resource: ``milnce`` (a TF-Hub SavedModel), ``mmv`` (checkpoint pickles),
``ucf101`` (a mini-UCF101 in the official layout). These stand-ins have random weights (tiny
mode's MIL-NCE module is the small model :mod:`helpers.training.standin` trains; the random
builds stay for the format tests): anything computed with them is labelled as a stand-in's
(``helpers.config.standin_label``) and shown under the tiny-mode banner.
"""
