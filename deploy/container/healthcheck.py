"""The container's HEALTHCHECK: GET /healthz on the admin listener, exit 0 when it answers 200.

The admin address comes from the same configuration the server reads (the file named by
INTERCEPT_CONFIG, then INTERCEPT_* variables), so overriding INTERCEPT_ADMIN_LISTEN moves the
check with the listener. A wildcard address (0.0.0.0, ::) is asked on loopback, which is
where the check runs: inside the container. Nothing else is read or printed (the exit status
and one short line are all podman and docker keep).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from intercept.config import ConfigError, load_config

_WILDCARDS = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "": "127.0.0.1"}
TIMEOUT = 3.0  # seconds; the HEALTHCHECK's own --timeout is the outer bound


def admin_url() -> str:
    """http://HOST:PORT/healthz of the admin listener, a wildcard host made loopback."""
    host, _, port = load_config().admin_listen.rpartition(":")
    return f"http://{_WILDCARDS.get(host, host)}:{port}/healthz"


def main() -> int:
    try:
        url = admin_url()
    except ConfigError as error:
        print(f"unhealthy: configuration: {error}", file=sys.stderr)
        return 1
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError as error:
        print(f"unhealthy: {url}: {type(error).__name__}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
