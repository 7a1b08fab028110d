"""Ops shell: onboard a school or rotate its API token, through the running
registry_sync service (the same rules and audit as the internal endpoints).

    python -m services.registry_sync.cli onboard BJ101 "北京市第一〇一中学" --region 北京
    python -m services.registry_sync.cli rotate BJ101

The token is printed once, on standard output alone (pipe it into your
secret store); it cannot be shown again. The broker is the one in
``services/registry_sync/config.yml`` (``AMQP_URI`` from the environment).
"""

import argparse
import getpass
import sys

from nameko.standalone.rpc import ClusterRpcProxy

from services.common.contract.errors import ServiceError
from services.common.plumbing.config import load_config
from services.common.plumbing.migrate import SERVICES_ROOT

__all__ = ["main"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    onboard = commands.add_parser("onboard", help="a new school and its token")
    onboard.add_argument("code")
    onboard.add_argument("name")
    onboard.add_argument("--region")
    rotate = commands.add_parser("rotate", help="a new token; the old one dies")
    rotate.add_argument("code")
    args = parser.parse_args(argv)
    config = load_config(SERVICES_ROOT / "registry_sync" / "config.yml")
    actor = f"cli:{getpass.getuser()}"
    try:
        with ClusterRpcProxy({"AMQP_URI": config["AMQP_URI"]}, timeout=30) as cluster:
            if args.command == "onboard":
                answer = cluster.registry_sync.onboard_school(
                    {
                        "code": args.code,
                        "name": args.name,
                        "region": args.region,
                        "actor": actor,
                    }
                )
            else:
                answer = cluster.registry_sync.rotate_school_token(
                    {"code": args.code, "actor": actor}
                )
    except ServiceError as refusal:
        # The stable code (the zh/en words are the gateway's); README's
        # error table says what each means.
        print(f"refused: {refusal.code} {refusal.extra or ''}", file=sys.stderr)
        return 1
    print(f"school {answer['code']}: API token (shown once):", file=sys.stderr)
    print(answer["api_token"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
