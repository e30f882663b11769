"""One module per command group, in the order of the journey (the way pip keeps commands/).

Each module only parses flags, calls one function of the step's own package and prints.

    reserve.py    reserve, status, extend, ssh        provision/, inventory/
    cluster.py    cluster [reset|registry], kubectl   cluster/, playbooks/, roles/
    build.py      build                               image/
    deploy.py     deploy                              manifests/
    evaluate.py   evaluate, report                    evaluate/
    teardown.py   teardown                            provision/
    up.py         up, down                            up.py (the journey in one go)
    serve.py      serve                               local/, app/
    demo.py       demo                                local/, evaluate/
    predict.py    predict                             predict/ (simulation), local/
    model.py      model export|quantize|choose|...    model/
    config.py     config show                         config.py
    base.py       the context, consoles and options several commands share
"""

from __future__ import annotations

from ggctl.commands.build import build
from ggctl.commands.cluster import cluster, kubectl
from ggctl.commands.config import config_group
from ggctl.commands.demo import demo
from ggctl.commands.deploy import deploy
from ggctl.commands.evaluate import evaluate, report
from ggctl.commands.model import model_group
from ggctl.commands.predict import predict
from ggctl.commands.reserve import extend, reserve, ssh, status
from ggctl.commands.serve import serve
from ggctl.commands.teardown import teardown
from ggctl.commands.up import down, up

COMMANDS = (
    reserve,
    status,
    extend,
    ssh,
    cluster,
    kubectl,
    build,
    deploy,
    evaluate,
    report,
    teardown,
    up,
    down,
    serve,
    demo,
    predict,
    model_group,
    config_group,
)
