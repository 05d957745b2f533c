"""Runs: a whole training job from a few choices, assembled above the training loop and the
pipeline (data, networks, recipe, `train`, then the saved model folder `hk.load` reads)."""
