"""Command line entry point: ``codellama-lsp`` / ``python -m lsp_server`` (stdio by default).

``--tcp --port N`` serves one client over TCP (for debugging with a client you start yourself).
Nothing here imports torch: the model loads in the background after ``initialized``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from lsp_server import __version__


def build_parser() -> argparse.ArgumentParser:
    """The CLI: transport and early logging options (everything else is an LSP setting)."""
    parser = argparse.ArgumentParser(
        prog="codellama-lsp",
        description="Language server with workspace-tuned CodeLlama-family completions.",
    )
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument(
        "--stdio", action="store_true", help="talk LSP over stdin/stdout (default)"
    )
    transport.add_argument("--tcp", action="store_true", help="listen for one client over TCP")
    parser.add_argument("--host", default="127.0.0.1", help="TCP host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=2087, help="TCP port (default 2087)")
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["error", "warning", "info", "debug"],
        help="level of the stderr log before settings arrive (default warning)",
    )
    parser.add_argument("--version", action="version", version=f"codellama-lsp {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the server until the client disconnects or sends ``exit``."""
    args = build_parser().parse_args(argv)
    from lsp_server import logs
    from lsp_server.setup import create_server

    logs.log_to_stderr(getattr(logging, args.log_level.upper()))

    server = create_server()
    if args.tcp:
        server.start_tcp(args.host, args.port)
    else:
        server.start_io()
    return server.exit_code  # LSP: 0 after shutdown + exit, 1 otherwise


if __name__ == "__main__":
    sys.exit(main())
