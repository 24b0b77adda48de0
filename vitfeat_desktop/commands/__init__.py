"""``vitfeat`` subcommands, one module per feature; each module exposes ``register(subparsers)``."""

from __future__ import annotations

import argparse


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The ``--model`` / ``--fp32`` pair every command that runs a model accepts."""
    parser.add_argument("--model", metavar="ID|PATH", default=None,
                        help="hub id or model folder (default: the app's configured model)")
    parser.add_argument("--fp32", action="store_true",
                        help="use the full-precision onnx/model.onnx instead of the int8 model_quantized.onnx")
