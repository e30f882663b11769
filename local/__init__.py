"""The journey on your own machine, no cloud: `ggctl serve` and `ggctl demo`.

serving.py   settings → the service's run options; the built-in demo model
demo.py      serve locally and drive the challenge's load profile at it, with scores
"""
