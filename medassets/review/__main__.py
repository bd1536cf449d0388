"""`python -m medassets.review [--host HOST] [--port PORT]`: serve the review page.

It listens on this machine only (127.0.0.1) unless --host says otherwise: it has no login, and
its pages show the items' text. It reads the state of MEDASSETS_HOME (or MEDASSETS_STORAGE_URL and
MEDASSETS_POSTGRES_URL on a team instance) and, with DAGSTER_HOME set, that instance's models.
"""

import argparse

import uvicorn

from medassets.review.app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m medassets.review", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=3001, help="port (default 3001)")
    args = parser.parse_args()
    # The access log holds method, path and status: ids, never text (no text is ever in a URL).
    uvicorn.run(create_app(), host=args.host, port=args.port, access_log=True, server_header=False)


if __name__ == "__main__":
    main()
