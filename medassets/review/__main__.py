"""`python -m medassets.review [--host HOST] [--port PORT] [--token TOKEN]`: serve the review page.

It listens on this machine only (127.0.0.1) unless --host says otherwise, answers only requests
addressed to its own origins (its loopback names, the --host address, MEDASSETS_REVIEW_URL), and
only to a browser that opened the URL it prints at start, which holds its access token (a new
random one each start, unless --token or MEDASSETS_REVIEW_TOKEN fixes it). It reads the state of
MEDASSETS_HOME (or MEDASSETS_STORAGE_URL and MEDASSETS_POSTGRES_URL on a team instance) and, with
DAGSTER_HOME set, that instance's models.
"""

import argparse
import logging
import re
import secrets
from urllib.parse import urlsplit

import uvicorn

from medassets import paths
from medassets.review.app import LOOPBACK_NAMES, create_app, page_origins


LOOPBACK_HOSTNAMES = {name.strip("[]") for name in LOOPBACK_NAMES}


class HideAccessToken(logging.Filter):
    """The access log shows `token=...` for the token in a URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.args = tuple(re.sub(r"token=[^&\s]*", "token=...", arg) if isinstance(arg, str) else arg for arg in record.args or ())
        return True


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m medassets.review", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=3001, help="port (default 3001)")
    parser.add_argument("--token", help="a fixed access token (default: MEDASSETS_REVIEW_TOKEN, else a new random one); "
                                        "other users of this machine can read a command line: prefer the variable there")
    args = parser.parse_args()
    token = args.token or paths.review_token() or secrets.token_urlsafe(32)
    origins = page_origins(args.port, args.host, paths.review_url())
    opened = [f"http://127.0.0.1:{args.port}", *sorted(origin for origin in origins if urlsplit(origin).hostname not in LOOPBACK_HOSTNAMES)]
    print("Open the review page at " + " or ".join(f"{origin}/?token={token}" for origin in opened), flush=True)
    logging.getLogger("uvicorn.access").addFilter(HideAccessToken())
    # The access log holds method, path and status: ids, never text (no text is ever in a URL).
    uvicorn.run(create_app(origins, token), host=args.host, port=args.port, access_log=True, server_header=False)


if __name__ == "__main__":
    main()
