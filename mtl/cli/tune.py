"""`mtl tune --study NAME --n-trials N -- <train flags>`: hyper-parameter search over `mtl train` runs (Optuna)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from mtl.flags import non_negative_int, positive_float, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune",
        help="hyper-parameter search: Optuna trials that each train a run",
        description="Each trial samples flags from the search space and trains `mtl train <train flags> <sampled "
        "flags>` in <runs-dir>/<study>/trial_<n> (TPE sampler, median pruning on the val grader per epoch). "
        "The objective is the run's best val grader. Running the command again with the same --study continues "
        "the study; workers on several machines share one through an RDB --storage URL.",
        epilog="example: mtl tune --study lr --n-trials 20 -- --dataset_root data --num_epochs 4",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--study", required=True, metavar="NAME", help="study name; also the folder under --runs-dir")
    parser.add_argument(
        "--n-trials", type=positive_int, default=None, metavar="N", help="trials to run in this invocation"
    )
    parser.add_argument(
        "--timeout", type=positive_float, default=None, metavar="S", help="seconds after which no new trial starts"
    )
    parser.add_argument(
        "--storage", default=None, metavar="URL",
        help="Optuna RDB URL, e.g. postgresql://user@host/db; None: sqlite:///<runs-dir>/<study>/optuna.db",
    )
    parser.add_argument(
        "--space", default=None, metavar="FILE", help="search-space YAML; None: configs/tune_space.yaml of the repo"
    )
    parser.add_argument("--runs-dir", default="runs", metavar="DIR", help="trial runs go to <runs-dir>/<study>/trial_<n>")
    parser.add_argument("--seed", type=int, default=0, help="TPE seed (offset by the trials already in the study)")
    parser.add_argument("--pruner", choices=["median", "none"], default="median", help="stop weak trials early")
    parser.add_argument(
        "--pruner-startup-trials", type=non_negative_int, default=5, help="no pruning until this many trials finished"
    )
    parser.add_argument(
        "--pruner-warmup-epochs", type=non_negative_int, default=1, help="no pruning of a trial before this epoch"
    )
    parser.add_argument(
        "--heartbeat-interval", type=positive_int, default=30, metavar="S",
        help="a running trial records a heartbeat in the storage every S seconds",
    )
    parser.add_argument(
        "--grace-period", type=positive_int, default=120, metavar="S",
        help="a RUNNING trial without a heartbeat for S seconds (its worker died) is recorded as FAIL by the next "
        "trial start of any worker; must be longer than --heartbeat-interval",
    )
    parser.add_argument(
        "--allow-changed", action="store_true",
        help="continue a study even though its train flags or search space changed",
    )
    parser.add_argument("train_flags", nargs="*", metavar="-- TRAIN_FLAGS", help="`mtl train` flags shared by all trials")
    parser.set_defaults(func=_tune)


def _tune(args: argparse.Namespace) -> int:
    from mtl.data.formats import DataFormatError
    from mtl.engine.callbacks import TrainingInterrupted
    from mtl.tuning.space import SpaceError, load_space
    from mtl.tuning.study import TuneError, best_info, make_pruner, masked, study_dir, tune

    argv = args.command_argv
    train_flags = argv[argv.index("--") + 1 :] if "--" in argv else list(args.train_flags)
    try:
        study = tune(
            args.study,
            train_flags,
            n_trials=args.n_trials,
            timeout=args.timeout,
            storage=args.storage,
            runs_dir=args.runs_dir,
            space=load_space(args.space) if args.space else None,
            seed=args.seed,
            pruner=make_pruner(args.pruner, args.pruner_startup_trials, args.pruner_warmup_epochs),
            allow_changed=args.allow_changed,
            heartbeat_interval=args.heartbeat_interval,
            grace_period=args.grace_period,
        )
    except (SpaceError, TuneError, FileExistsError, FileNotFoundError, DataFormatError) as exc:
        print(f"mtl tune: {exc}", file=sys.stderr)
        return 2
    except TrainingInterrupted as exc:
        print(f"mtl tune: {exc}; the trial is recorded as FAIL; run the same command to continue the study",
              file=sys.stderr)
        return 128 + exc.signum
    root = study_dir(args.runs_dir, args.study)
    states = Counter(t.state.name for t in study.get_trials(deepcopy=False))
    where = masked(args.storage) if args.storage else root / "optuna.db"
    print(f"study {args.study} ({where}): " + ", ".join(f"{n} {state}" for state, n in sorted(states.items())))
    best = best_info(study, train_flags)
    if best is None:
        print("mtl tune: no trial has completed yet", file=sys.stderr)
        return 1
    print(f"best trial: {best['trial']} (val grader {best['value']:.4f}), run {best['run_dir']}")
    for flag, value in best["overrides"].items():
        print(f"  --{flag} {value}")
    print(f"reproduce: {best['command']}")
    print(f"written: {root / 'best.json'}")
    return 0
