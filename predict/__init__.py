"""`ggctl predict`: the challenge simulated before a cluster run, calibrated on your model.

calibrate.py measures the model as one pod serves it (cached); hpa.py is the autoscaler's
algorithm; sim.py the event simulation; scenario.py turns a strategy and a measurement
into the simulation's parameters, each with its source; run.py writes run directories in
`ggctl evaluate`'s shapes; show.py prints.
"""
