"""Flags that say how to encode a user's CSV columns: ``--categorical``, ``--impute``, ``--ignore-column``.

A command adds them with :func:`add_tabular_flags` and reads them back with
:func:`tabular_options`; the label column comes from the command's own ``--label-column``.
"""

from __future__ import annotations

import argparse

from miaudit.data.tabular import IMPUTE_STRATEGIES, TabularOptions

AUTO = "auto"


def add_tabular_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--categorical [COLS]``, ``--impute STRATEGY`` and ``--ignore-column NAME`` (repeatable)."""
    parser.add_argument(
        "--categorical", nargs="?", const=AUTO, default=None, metavar="COLS",
        help="one-hot encode categorical columns (fitted on the training file); alone: every non-numeric "
        "column, or a comma-separated list of columns",
    )  # fmt: skip
    parser.add_argument(
        "--impute", choices=IMPUTE_STRATEGIES, default=None,
        help="fill missing values with the training file's column mean/median/most frequent value "
        "(default: refuse missing values)",
    )  # fmt: skip
    parser.add_argument(
        "--ignore-column", action="append", default=[], metavar="NAME", dest="ignore_columns",
        help="drop this column (e.g. an ID); repeat for several",
    )  # fmt: skip


def tabular_options(args: argparse.Namespace) -> TabularOptions:
    """The :class:`TabularOptions` the parsed flags ask for (label column: ``args.label_column``)."""
    categorical = args.categorical
    if categorical is not None and categorical != AUTO:
        categorical = tuple(c.strip() for c in categorical.split(",") if c.strip())
    ignore = tuple(c.strip() for c in args.ignore_columns)
    return TabularOptions(
        label_column=getattr(args, "label_column", None),
        categorical=categorical,
        impute=args.impute,
        ignore_columns=ignore,
    )
