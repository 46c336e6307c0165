"""`wordbrush serve`: the OpenAI-compatible images API and its page (wordbrush/serve/). Nothing heavy is imported
at module level (fastapi, uvicorn and torch load in run), so --help is fast. A flag left out falls back to its
WORDBRUSH_* environment variable, then to the default (serve/settings.py)."""

from __future__ import annotations

import argparse
import sys

from ..errors import WordbrushError
from .common import number, positive_int

HELP = "serve a model over HTTP: the OpenAI images API (/v1/images/generations) and a web page at /"


_port = number(int, 0, 65535, "a port number")
_milliseconds = number(float, 0, 60_000, "milliseconds")


def add_parser(sub) -> None:
    parser = sub.add_parser("serve", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    add_arguments(parser).set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--model", metavar="NAME|DIR",
                        help="built-in model name (shapes, shapes-minilm, emoji, shapes-gan) or saved model folder "
                        "(default: shapes; env WORDBRUSH_MODEL)")
    parser.add_argument("--model-name", metavar="NAME",
                        help="the name clients send in the request's `model` field (default: the built-in name "
                        "or the folder's name)")
    parser.add_argument("--host", help="address to bind (default: 127.0.0.1, loopback only; 0.0.0.0 exposes the "
                        "server to the network: use --api-key then)")
    parser.add_argument("--port", type=_port, help="port to listen on (default: 8000; 0 picks a free one)")
    parser.add_argument("--api-key", metavar="KEY", help="require 'Authorization: Bearer KEY' on every route but "
                        "/healthz and the page itself (default: none; env WORDBRUSH_API_KEY keeps it out of the "
                        "process list)")
    parser.add_argument("--max-batch", type=positive_int, metavar="B",
                        help="most images drawn in one model call (default: 32)")
    parser.add_argument("--max-wait-ms", type=_milliseconds, metavar="T",
                        help="how long a request waits for others to share its model call (default: 10)")
    parser.add_argument("--max-queue", type=positive_int, metavar="Q",
                        help="requests that may wait for the model; the next one gets 429 (default: 256)")
    parser.add_argument("--compile", action="store_true", default=None,
                        help="sample through torch.compile, compiled before serving for full batches (default: "
                        "off; needs a C++ compiler on the CPU)")
    parser.add_argument("--log-level", choices=("critical", "error", "warning", "info", "debug"), default="info",
                        help="uvicorn's log level (default: info)")
    return parser


def settings_from(args: argparse.Namespace):
    """The typed settings: flags given on the command line win over WORDBRUSH_* variables and defaults."""
    from ..serve.settings import ServeSettings

    given = {name: getattr(args, name, None) for name in ("model", "model_name", "host", "port", "api_key",
                                                           "max_batch", "max_wait_ms", "max_queue", "compile")}
    return ServeSettings(**{k: v for k, v in given.items() if v is not None})


def run(args: argparse.Namespace) -> None:
    """Load the model, then serve until interrupted. Bad settings or a model that cannot be loaded are one line."""
    try:
        import uvicorn
        from pydantic import ValidationError

        from ..serve.app import create_app, load_pipeline, served_name
    except ImportError as e:
        raise WordbrushError(f"wordbrush serve needs the serve extra ({e.name} is missing): "
                             "pip install 'wordbrush[serve]'") from None

    try:
        settings = settings_from(args)
    except ValidationError as e:
        raise WordbrushError(_first_error(e)) from None
    pipe = load_pipeline(settings)
    if settings.host not in ("127.0.0.1", "localhost", "::1") and settings.api_key is None:
        print(f"wordbrush: warning: serving on {settings.host} without --api-key: anyone who can reach "
              "this port can use the model", file=sys.stderr)
    print(f"wordbrush serve: {served_name(settings)} ({pipe.image_size}x{pipe.image_size}) on "
          f"http://{settings.host}:{settings.port}/", file=sys.stderr)
    uvicorn.run(create_app(settings, pipe), host=settings.host, port=settings.port, log_level=args.log_level,
                timeout_graceful_shutdown=10)


def _first_error(e) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "settings"
    return f"{where}: {err.get('msg')}"
