"""`mtclar`: serve | worker | import | export | label | evaluate | train | train-sl | finetune | agreement."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from mtclar.model.errors import ConfigError, MtclarError
from mtclar.settings import Settings

COMMANDS = ("serve", "worker", "import", "export", "label", "evaluate", "train", "train-sl", "finetune", "agreement")


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mtclar", description="Few-shot valence/arousal labelling of face videos "
                                     "(MT-CLAR) and its Label Studio ML backend.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"mtclar.commands.{name.replace('-', '_')}")
        module.add_parser(sub, settings)
    return parser


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int:
    """The command line's entry: the environment is read here, once, into the settings every command gets."""
    try:
        settings = Settings.from_env(environ)
    except ConfigError as error:
        print(f"mtclar: error: {error}", file=sys.stderr)
        return 2
    args = build_parser(settings).parse_args(argv)
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args, settings) or 0)
    except MtclarError as error:
        print(f"mtclar {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
