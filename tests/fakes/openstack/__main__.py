"""Serve the fake cloud by hand: ``python -m tests.fakes.openstack --port 8999
--clouds-yaml /tmp/clouds.yaml`` then ``OS_CLIENT_CONFIG_FILE=/tmp/clouds.yaml
OS_CLOUD=fake ggctl reserve``. Serves until interrupted (Ctrl-C)."""

from __future__ import annotations

import argparse
import threading

from .server import PROJECT, FakeCloud


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, start the fake, write clouds.yaml, wait for Ctrl-C."""
    ap = argparse.ArgumentParser(prog="python -m tests.fakes.openstack", description=__doc__)
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free)")
    ap.add_argument("--clouds-yaml", help="write a clouds.yaml with the cloud 'fake' here")
    ap.add_argument("--user", default="alice", choices=["alice", "bob"])
    ap.add_argument(
        "--build-polls", type=int, default=1, help="GETs a server stays in BUILD before ACTIVE"
    )
    args = ap.parse_args(argv)
    cloud = FakeCloud(port=args.port)
    cloud.world.settings.server_build_polls = args.build_polls
    with cloud:
        print(
            f"fake OpenStack at {cloud.url} (auth {cloud.auth_url}, project {PROJECT})", flush=True
        )
        if args.clouds_yaml:
            cloud.clouds_yaml(args.clouds_yaml, user=args.user)
            print(
                f"wrote {args.clouds_yaml}: OS_CLIENT_CONFIG_FILE={args.clouds_yaml} OS_CLOUD=fake",
                flush=True,
            )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
