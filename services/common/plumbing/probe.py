"""Readiness of one back-end service instance, for Kubernetes' exec probe::

    python -m services.common.plumbing.probe verification

Ready means both:

1. the service answers its ``health`` RPC through the broker within
   ``--timeout`` seconds (the broker is reachable from this pod, an instance
   of the service consumes its queue, and its database answers a query);
2. this pod's own process is up and serving: its metrics endpoint answers
   on ``METRICS_PORT`` (skipped when the service runs without one).

The RPC queue is shared by every instance, so (1) alone cannot tell this
pod from its siblings; (2) is the part only this pod can answer. Exit 0
when ready; otherwise 1 and one line on stderr saying what failed.
"""

import argparse
import sys
import urllib.request

from services.common.contract.vocabulary import BACKEND_SERVICES
from services.common.plumbing.config import load_config


def check(service, timeout=3.0):
    """``None`` when ready, else what is wrong."""
    config = load_config(f"services/{service}/config.yml")
    from nameko.standalone.rpc import ClusterRpcProxy

    try:
        with ClusterRpcProxy({"AMQP_URI": config["AMQP_URI"]}, timeout=timeout) as rpc:
            answer = getattr(rpc, service).health()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return f"{service}.health RPC failed: {type(exc).__name__}"
    if answer.get("database") != "ok":
        return f"{service}: database {answer.get('database')}"
    port = int(config.get("METRICS_PORT") or 0)
    if port:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/metrics", timeout=timeout
            ) as reply:
                if reply.status != 200:
                    return f"{service}: metrics answered {reply.status}"
        except OSError as exc:
            return f"{service}: this instance's metrics port {port}: {exc}"
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m services.common.plumbing.probe")
    parser.add_argument("service", choices=BACKEND_SERVICES)
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    problem = check(args.service, args.timeout)
    if problem:
        print(f"not ready: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
