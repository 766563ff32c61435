"""The ``efl`` command: thin entry points over importable modules.

Subcommands (contracts in DESIGN.md):

* ``efl demo``: the end-to-end experiment (:func:`efl_toolkit.pipeline.run_experiment`); its
  arguments are parsed here (:func:`config_from_args`, :func:`demo_main`).
* ``efl ledger verify|log|show|checkpoint``: inspect and verify a ledger file, print its signed
  checkpoint (``efl_toolkit.ledger.cli``).
* ``efl party``: run one MPyC party of a secure round (``efl_toolkit.secure.party``).

Heavy modules (JAX, MPyC) are imported only by the subcommand that needs them. Bad input to any
subcommand is one line ``efl <command>: error: ...`` on standard error and exit code 2.

Example:
    $ efl demo --preset classroom_fast --out efl_out
    $ efl ledger verify efl_out/ledger.sqlite
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from efl_toolkit.config import ExperimentConfig


class OneLineArgumentParser(argparse.ArgumentParser):
    """An argument parser whose errors are ONE line, ``efl <command>: error: ...``, exit 2
    (argparse's default prints the whole usage first; ``--help`` still shows it)."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``efl`` command (``party`` takes its arguments raw)."""
    parser = OneLineArgumentParser(
        prog="efl", description="Secure ensemble federated learning for healthcare."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the end-to-end experiment and write a report")
    demo.add_argument("--preset", default=None, help="classroom_fast (default) or paper")
    demo.add_argument("--dataset", default=None, help="embedded name or path to a MedMNIST .npz")
    demo.add_argument("--institutions", type=int, default=None, help="number of institutions")
    demo.add_argument("--parties", type=int, default=None, help="MPyC party processes")
    demo.add_argument("--seed", type=int, default=None, help="master seed")
    demo.add_argument("--out", default="efl_out", help="output directory")

    ledger = sub.add_parser("ledger", help="verify and inspect a ledger file")
    lsub = ledger.add_subparsers(dest="ledger_command", required=True)
    verify = lsub.add_parser("verify", help="verify every block; exit 1 on the first failure")
    verify.add_argument("path")
    verify.add_argument("--checkpoint", default=None, metavar="FILE",
                        help="a checkpoint kept earlier: prove the ledger is consistent with it "
                             "(reports truncation or a fork)")
    verify.add_argument("--trusted-keys", default=None, metavar="FILE",
                        help="the institutions' public keys obtained out of band (C2SP verifier "
                             "keys, one a line, or JSON {id: hex key})")
    verify.add_argument("--genesis", default=None, metavar="HASH",
                        help="the genesis block hash obtained out of band")
    log = lsub.add_parser("log", help="model version history, newest first")
    log.add_argument("path")
    log.add_argument("--institution", default=None)
    show = lsub.add_parser("show", help="one block with its decoded transactions")
    show.add_argument("path")
    show.add_argument("height", type=int)
    checkpoint = lsub.add_parser("checkpoint", help="print the latest signed checkpoint note")
    checkpoint.add_argument("path")
    checkpoint.add_argument("--out", default=None, metavar="FILE",
                            help="write the note to FILE (atomically) instead of stdout")

    sub.add_parser("party", help="run one MPyC party, or with --committee one compute party "
                   "(see `efl party --help`)", add_help=False)
    sub.add_parser("share", help="as an institution, split an input into additive shares for "
                   "a committee round (see `efl share --help`)", add_help=False)
    return parser


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """The preset named by ``--preset`` with the command line's overrides applied.

    Example:
        >>> config_from_args(build_parser().parse_args(["demo", "--seed", "3"])).seed
        3
    """
    from efl_toolkit.config import get_config

    overrides = {name: value for name, value in (
        ("dataset", getattr(args, "dataset", None)),
        ("n_institutions", getattr(args, "institutions", None)),
        ("n_parties", getattr(args, "parties", None)),
        ("seed", getattr(args, "seed", None)),
    ) if value is not None}
    return get_config(getattr(args, "preset", None), **overrides)


def demo_main(args: argparse.Namespace) -> int:
    """``efl demo``: runs the experiment and prints the headline numbers; returns the exit code.

    Example:
        >>> demo_main(build_parser().parse_args(["demo", "--out", "efl_out"]))  # doctest: +SKIP
        0
    """
    from efl_toolkit.data import DatasetError
    from efl_toolkit.pipeline import run_experiment
    from efl_toolkit.secure import SecureRoundError

    try:
        config = config_from_args(args)
        result = run_experiment(config, args.out)
    except (DatasetError, SecureRoundError, ValueError) as error:
        print(f"efl demo: error: {error}", file=sys.stderr)
        return 2
    from efl_toolkit.report import headline

    print(headline(result.report, args.out))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Runs the ``efl`` command; returns the process exit code."""
    try:
        return _dispatch(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:  # e.g. `efl ledger log ... | head`: the reader left, not an error
        sys.stderr.close()
        return 0


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] == "party":
        from efl_toolkit.secure.party import main as party_main

        return party_main(argv[1:])
    if argv and argv[0] == "share":
        from efl_toolkit.secure.shares import main as share_main

        return share_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return demo_main(args)
    from efl_toolkit.ledger.cli import main as ledger_main

    return ledger_main(args)


if __name__ == "__main__":
    sys.exit(main())
