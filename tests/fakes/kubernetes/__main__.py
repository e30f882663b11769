"""Run the fake on its own, for trying ggctl by hand:

    python -m tests.fakes.kubernetes --port 6443 --kubeconfig /tmp/fake-kubeconfig
    ggctl deploy --kubeconfig /tmp/fake-kubeconfig --strategy hpa

Serves until interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import math
import sys
import time

from .server import FakeKubernetes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.kubernetes",
        description="A fake Kubernetes API server on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig file to write")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="cluster seconds per wall second (default 1)"
    )
    parser.add_argument("--version", default="v1.33.4", help="Kubernetes version to report")
    parser.add_argument(
        "--load", type=float, default=0.0, help="CPU cores of work offered to each app (default 0)"
    )
    parser.add_argument(
        "--wave",
        type=float,
        default=0.0,
        help="make the load a sine wave of this period in cluster seconds",
    )
    parser.add_argument(
        "--inject",
        action="append",
        default=[],
        metavar="FAULT[=IMAGE]",
        help="image-pull, crash-loop, unschedulable or never-ready, for images "
        "containing IMAGE (default all); repeatable",
    )
    parser.add_argument(
        "--lb-pool",
        default=None,
        metavar="FIRST-LAST",
        help="addresses for LoadBalancer Services, as MetalLB (default: none, <pending>)",
    )
    args = parser.parse_args(argv)
    fake = FakeKubernetes(
        speed=args.speed, version=args.version, port=args.port, lb_pool=args.lb_pool
    )
    if args.wave:
        fake.set_load(lambda t: args.load * (1 + math.sin(2 * math.pi * t / args.wave)) / 2)
    else:
        fake.set_load(lambda t: args.load)
    for spec in args.inject:
        kind, _, image = spec.partition("=")
        fake.inject(kind, image or None)
    with fake:
        path = fake.kubeconfig(args.kubeconfig)
        print(f"fake Kubernetes {args.version} at {fake.url}; kubeconfig {path}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
