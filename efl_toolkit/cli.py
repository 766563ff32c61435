"""The ``efl`` command: thin entry points over importable modules.

Subcommands (contracts in docs/design.md):

* ``efl demo``: the end-to-end experiment (:func:`efl_toolkit.pipeline.run_experiment`); its
  arguments are parsed here (:func:`config_from_args`, :func:`demo_main`).
* ``efl ledger verify|log|show|checkpoint``: inspect and verify a ledger file, print its signed
  checkpoint (``efl_toolkit.ledger.cli``).
* ``efl party``: run one MPyC party of a secure round (``efl_toolkit.secure.party``).

Heavy modules (JAX, MPyC) are imported only by the subcommand that needs them. Bad input to any
subcommand is one line ``efl <command>: error: ...`` on standard error and exit code 2.

Example:
    $ efl demo --preset classroom_fast --out efl_out
    $ efl demo --config variant.toml --rule equal --epochs 5 --out efl_variant
    $ efl ledger verify efl_out/ledger.sqlite
"""

from __future__ import annotations

import argparse
import signal
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
    demo.add_argument("--parties", type=int, default=None,
                      help="compute parties of the committee that runs the secure rounds (>= 3)")
    demo.add_argument("--method", default=None, choices=("hierarchical", "ensemble_only"),
                      help="hierarchical (default): federated groups, then the secure ensemble; "
                           "ensemble_only: each institution alone, then the secure ensemble")
    demo.add_argument("--seed", type=int, default=None, help="master seed")
    demo.add_argument("--partition", default=None, choices=("iid", "dirichlet", "quantity"),
                      help="how the training split is divided among the institutions")
    demo.add_argument("--alpha", type=float, default=None,
                      help="Dirichlet label-skew concentration (smaller: more skewed)")
    demo.add_argument("--epochs", type=int, default=None,
                      help="maximum local training epochs (early stopping may stop sooner)")
    demo.add_argument("--rule", default=None,
                      help="level-2 weighting rule: auto (default), consortium_auc, own_auc, "
                           "equal, n_train, or one registered with register_rule")
    demo.add_argument("--reveal", default=None, choices=("mean", "labels"),
                      help="what the secure round opens (labels needs --decision argmax)")
    demo.add_argument("--decision", default=None, choices=("balanced", "argmax"),
                      help="how level 2 turns probabilities into labels")
    demo.add_argument("--config", default=None, metavar="FILE.toml",
                      help="any ExperimentConfig field from a TOML file ([train] and "
                           "[architectures] tables); flags given here override it")
    demo.add_argument("--plugin", action="append", default=None, metavar="MODULE|FILE.py",
                      help="import a module first (repeatable): one's own architectures and "
                           "level-2 rules (register_architecture, register_rule)")
    demo.add_argument("--ledger", default=None, metavar="ENGINE",
                      help="embedded (default: ledger.sqlite), evm (a Vyper contract on an "
                           "in-process EVM chain) or evm:RPC_URL (any Ethereum JSON-RPC node)")
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
    """The effective config: the preset (``--preset``, else the ``--config`` file's ``name``,
    else ``$EFL_PRESET``), then the ``--config`` TOML file's fields, then the flags.

    Raises:
        ConfigError: One line naming the field (and the file): an unknown field, a wrong type,
            a value out of range, a missing or unreadable file.

    Example:
        >>> config_from_args(build_parser().parse_args(["demo", "--seed", "3"])).seed
        3
    """
    from efl_toolkit.config import config_from_toml, get_config

    load_plugins(getattr(args, "plugin", None) or ())  # before the config names their parts
    preset, path = getattr(args, "preset", None), getattr(args, "config", None)
    base = get_config(preset) if preset or not path else None
    config = config_from_toml(path, base) if path else base
    epochs = getattr(args, "epochs", None)
    overrides = {name: value for name, value in (
        ("dataset", getattr(args, "dataset", None)),
        ("n_institutions", getattr(args, "institutions", None)),
        ("n_parties", getattr(args, "parties", None)),
        ("seed", getattr(args, "seed", None)),
        ("method", getattr(args, "method", None)),
        ("partition", getattr(args, "partition", None)),
        ("dirichlet_alpha", getattr(args, "alpha", None)),
        ("rule", getattr(args, "rule", None)),
        ("reveal", getattr(args, "reveal", None)),
        ("decision", getattr(args, "decision", None)),
        ("ledger", getattr(args, "ledger", None)),
        ("train", None if epochs is None else {"epochs": epochs}),
    ) if value is not None}
    return config.replace(**overrides) if overrides else config


def load_plugins(specs) -> None:
    """Imports each ``--plugin``: a module name (``my_lab.models``) or a ``.py`` file, whose
    import registers one's own architectures and level-2 rules.

    Raises:
        ValueError: One line naming the plugin: a missing file, or the error its import raised.

    Example:
        >>> load_plugins(["json"])
        >>> load_plugins(["no_such_plugin_module"])
        Traceback (most recent call last):
        ...
        ValueError: --plugin no_such_plugin_module: ModuleNotFoundError: No module named \
'no_such_plugin_module'
    """
    import importlib
    import importlib.util
    from pathlib import Path

    for spec in specs:
        try:
            if spec.endswith(".py"):
                path = Path(spec)
                if not path.is_file():
                    raise ValueError(f"--plugin {spec}: no such file")
                module_spec = importlib.util.spec_from_file_location(
                    f"efl_plugin_{path.stem}", path)
                module = importlib.util.module_from_spec(module_spec)
                sys.modules[module_spec.name] = module
                module_spec.loader.exec_module(module)
            else:
                importlib.import_module(spec)
        except ValueError as error:
            raise ValueError(error if str(error).startswith("--plugin") else
                             f"--plugin {spec}: {error}") from None
        except Exception as error:  # noqa: BLE001 - any import failure is the plugin's, named
            raise ValueError(f"--plugin {spec}: {type(error).__name__}: {error}") from None


def demo_main(args: argparse.Namespace) -> int:
    """``efl demo``: runs the experiment and prints the headline numbers; returns the exit code.

    Example:
        >>> demo_main(build_parser().parse_args(["demo", "--out", "efl_out"]))  # doctest: +SKIP
        0
    """
    from efl_toolkit.data import DatasetError, load_dataset
    from efl_toolkit.ledger import LedgerError
    from efl_toolkit.secure import SecureRoundError

    try:
        config = config_from_args(args)
        check_out_dir(args.out)  # before any long work
        check_secure_round(config)
        load_dataset(config.dataset)  # a bad file fails here, seconds in, not after training
    except (DatasetError, ValueError) as error:
        print(f"efl demo: error: {error}", file=sys.stderr)
        return 2
    from efl_toolkit.pipeline import run_experiment

    try:
        with out_dir_lock(args.out):
            result = run_experiment(config, args.out)
    except (DatasetError, ValueError, LedgerError) as error:
        print(f"efl demo: error: {error}", file=sys.stderr)
        return 2
    except SecureRoundError as error:
        print(f"efl demo: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"efl demo: error: {getattr(error, 'filename', None) or args.out}: "
              f"{error.strerror or error}", file=sys.stderr)
        return 1
    from efl_toolkit.report import headline

    print(headline(result.report, args.out))
    return 0


def check_out_dir(out: str) -> None:
    """``ValueError`` (one line, naming ``--out``) unless ``out`` is, or can become, a folder
    this process can write in; nothing is created.

    Example:
        >>> check_out_dir("/proc/version")
        Traceback (most recent call last):
        ...
        ValueError: --out /proc/version is an existing file, not a folder: name a folder
    """
    import os
    from pathlib import Path

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {out} is an existing file, not a folder: name a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"--out {out}: {existing} is a file, so the folder cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: {existing} is not writable (read-only folder or media); "
                         "choose another --out")
    import tempfile

    try:  # root passes os.access on a read-only mount: try for real
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise ValueError(f"--out {out}: cannot write in {existing} ({err.strerror or err}); "
                         "choose another --out") from None


def check_secure_round(config: ExperimentConfig) -> None:
    """The secure round's own constructor checks (committee size, colluders), run before any
    training, with a hint how to make it work.

    Example:
        >>> from efl_toolkit.config import get_config
        >>> check_secure_round(get_config("classroom_fast"))
    """
    from efl_toolkit.secure.committee_client import Committee

    size = getattr(config, "n_parties", None)
    try:
        Committee(3 if size is None else size)  # validates only; start() launches
    except ValueError as err:
        raise ValueError(f"--parties {size}: {err} (e.g. --parties 3)") from None


class out_dir_lock:  # noqa: N801 - used as a context manager
    """An exclusive ``flock`` on ``OUT/.efl-demo.lock`` for one run: a second ``efl demo`` into
    the same folder fails at once, and a killed run never leaves a stale lock (the kernel
    releases it with the process)."""

    def __init__(self, out: str) -> None:
        from pathlib import Path

        self.path = Path(out) / ".efl-demo.lock"
        self.fd: int | None = None

    def __enter__(self) -> out_dir_lock:
        import fcntl
        import os

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise ValueError(f"--out {self.path.parent}: another efl demo (pid {holder}) is "
                             "writing there; wait for it or choose another --out") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)
        return self

    def __exit__(self, *exc) -> None:
        import os

        if self.fd is not None:
            os.close(self.fd)  # releases the lock; the empty-of-meaning file may stay


BAD_INPUT_ERRORS = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError,
                    NotADirectoryError, PermissionError)


def _one_line_error(self: argparse.ArgumentParser, message: str):
    self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _command_name(argv: list[str]) -> str:
    words = ["efl"]
    for word in argv[:2]:
        if word.startswith("-"):
            break
        words.append(word)
        if word not in ("ledger", "party"):
            break
    return " ".join(words)


def main(argv: list[str] | None = None) -> int:
    """Runs the ``efl`` command; returns the process exit code.

    Whatever a subcommand meets, the user sees ONE line ``efl <command>: error: ...``, never a
    traceback: argparse errors of every subcommand's parser (also those built by ``efl party``
    and ``efl share`` themselves) and bad-input exceptions exit 2; anything unexpected exits 1
    (``EFL_DEBUG=1`` shows its traceback).
    """
    import os

    argv = list(sys.argv[1:] if argv is None else argv)
    original = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = _one_line_error  # type: ignore[method-assign]
    try:
        return _dispatch(argv)
    except BrokenPipeError:  # e.g. `efl ledger log ... | head`: the reader left, not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"{_command_name(argv)}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the last net: one line, never a traceback
        if os.environ.get("EFL_DEBUG"):
            raise
        bad_input = isinstance(error, BAD_INPUT_ERRORS)
        detail = str(error) if isinstance(error, ValueError) else \
            f"{type(error).__name__}: {error}"
        hint = "" if bad_input else " (unexpected; rerun with EFL_DEBUG=1 for the traceback)"
        print(f"{_command_name(argv)}: error: {detail}{hint}".replace("\n", " "),
              file=sys.stderr)
        return 2 if bad_input else 1
    finally:
        argparse.ArgumentParser.error = original  # type: ignore[method-assign]


def _terminate(signum, _frame) -> None:
    raise SystemExit(128 + signum)


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] == "party":
        from efl_toolkit.secure.party import main as party_main

        return party_main(argv[1:])
    if argv and argv[0] == "share":
        from efl_toolkit.secure.shares import main as share_main

        return share_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        # SIGTERM (a killed job, `kill PID`) unwinds like an exception, so the committee's
        # processes and its folder of shares, and the ledger, are closed and cleaned up
        signal.signal(signal.SIGTERM, _terminate)
        return demo_main(args)
    from efl_toolkit.ledger.cli import main as ledger_main

    return ledger_main(args)


if __name__ == "__main__":
    sys.exit(main())
