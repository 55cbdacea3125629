"""``multiconvex`` / ``python -m multiconvex``: the command line.

Commands: ``solvers`` (the backend registry), ``demo`` (the README's main job),
``bench`` (benchmark suites into a resumable run directory, in-process, on a local
process pool or on a Dask cluster) and ``report`` (markdown tables and PNG plots
from a run directory).
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
import time
import traceback
from collections.abc import Callable
from typing import Any

import cvxpy as cp
import numpy as np
from threadpoolctl import threadpool_limits

import multiconvex as mc
from multiconvex.benchmarks.problems import PROBLEMS
from multiconvex.benchmarks.report import render
from multiconvex.benchmarks.runner import (
    MAX_SEEDS,
    BenchOptions,
    RunDirError,
    case_states,
    list_cases,
    read_run,
    run_bench,
)
from multiconvex.benchmarks.suites import OURS, SUITES
from multiconvex.errors import InvalidInputError, LicenceError, SolverUnavailableError, UnknownSolverError
from multiconvex.executor import make_executor
from multiconvex.globalopt import GrowOptions, grow
from multiconvex.globalopt.mf_problem import MFGrowProblem, MFState
from multiconvex.solvers import available_solvers, get_backend, require_usable, resolve
from multiconvex.validation import parse_int, parse_int_list, parse_number

#: Exit codes scripts can rely on.
EXIT_OK = 0  # the command did what was asked (bench: every case ran and recorded a result)
EXIT_FAILED = 1  # the work ran but did not succeed (demo not converged or not certified; bench: a case raised)
EXIT_USAGE = 2  # bad command line (argparse), unknown suite / problem / method / solver
EXIT_UNAVAILABLE = 3  # something needed is missing: a solver, a licence, dask, the Dask scheduler
EXIT_RUN_DIR = 4  # the run directory cannot be used as asked (results exist without --resume; no run to report)
EXIT_INTERRUPTED = 130  # Ctrl-C: finished cases are saved; `bench --resume` goes on

EPILOG = """\
examples:
  multiconvex solvers                                  every backend: installed, licence, version
  multiconvex demo                                     prove a factorization of the digits data globally optimal
  multiconvex bench --suite quick --solvers clarabel,osqp,highs --out runs/quick
  multiconvex bench --suite factorization --solvers all --seeds 3 --time-limit 60 --workers 2
  multiconvex report runs/quick                        markdown + PNG plots in runs/quick
  multiconvex bench --suite quick --scheduler tcp://host:8786   on an existing Dask cluster

exit codes:
  0 success   1 some work failed (bench: a case raised an error; demo: not converged or not certified)
  2 usage error   3 solver / licence / dask / scheduler unavailable
  4 run directory unusable (results exist without --resume, or no run to report)   130 interrupted (Ctrl-C)
"""

DESCRIPTION = """\
multiconvex trains piecewise multi-convex models (ReLU networks, matrix factorizations, bilinear
problems) by iterated convex optimization with the backend solver you pick, and certifies the result.
This command lists the backends, runs the README's demo, runs benchmark suites (in-process, on a local
process pool with --workers N, or on a Dask cluster with --dask / --scheduler ADDRESS) and writes
reports. `multiconvex COMMAND --help` describes each command."""

logger = logging.getLogger("multiconvex.cli")


# -- demo ------------------------------------------------------------------------------------------------
#: ``bench``'s defaults (the options default to None, so that ``--resume`` can tell which ones a user gave)
DEFAULT_SUITE, DEFAULT_SOLVERS, DEFAULT_TOL = "quick", "clarabel", 1e-6
#: Rows of scikit-learn's bundled digits data (the demo's --samples is at most this).
DIGITS_ROWS = 1797
#: The demo's closed-form check: a certified objective within this relative distance of the SVT optimum.
CLOSED_FORM_RTOL = 1e-6


def _demo(args: argparse.Namespace) -> int:
    """The product in one run: a factorization proven globally optimal by ``grow``, checked against its closed
    form, then the same model by the block method chosen (Gauss–Seidel by default) for comparison."""
    # the comparison run's backend, before the minutes of grow: an unknown name is a usage error (2), a backend
    # not installed or without its licence exit 3; the blocks are least-squares problems (class EQP)
    require_usable(resolve(args.solver, "EQP", matrix_level=True))
    # BLAS threads: on these small matrices extra threads only contend for cores (measured on the 2-core
    # reference machine under load: 0.13-0.16 s with one thread, 0.9-9 s with the default)
    with threadpool_limits(limits=args.threads):
        return _demo_run(args)


def _demo_run(args: argparse.Namespace) -> int:
    from sklearn.datasets import load_digits  # lazy: scikit-learn takes ~0.5 s to import; only `demo` needs it

    from multiconvex.models import svt_optimum  # lazy: the models load torch (~0.7 s); only `demo` needs it

    Y = load_digits().data[: args.samples] / 16.0  # bundled with scikit-learn: no download
    Y = Y - Y.mean(axis=0)
    m, n = Y.shape
    k, lam = args.rank, args.lam
    started = time.perf_counter()
    print(f"matrix factorization of scikit-learn's digits: Y {m}x{n}, lambda {lam}")
    print("  objective ½‖Y − UVᵀ‖² + (λ/2)(‖U‖² + ‖V‖²): non-convex in (U, V), convex in U and in V")
    print()
    print("1. grow (multiconvex.globalopt): block descent, rescaling, new factors along the polar, until the "
          "global certificate holds")
    found, state = grow(MFGrowProblem(Y, lam, seed=0), MFState(np.zeros((m, 0)), np.zeros((n, 0))),
                        GrowOptions(max_iters=args.max_iters, tol=args.tol))
    X_star, exact = svt_optimum(Y, lam)
    rank = int(np.linalg.matrix_rank(X_star))
    grow_gap = (found.objective - exact) / max(1.0, abs(exact))
    print(textwrap.indent(found.summary(), "  "))
    print(f"  factors found: {state.U.shape[1]}")
    print(f"  closed-form check (svt_optimum: singular value soft-thresholding, rank {rank}): {exact:.10g}; "
          f"relative gap {grow_gap:.2e}")
    certified = found.status == "converged" and bool(found.certificate.global_optimal)
    confirmed = abs(grow_gap) <= CLOSED_FORM_RTOL
    print()
    print(f"2. {args.algorithm} with rank {k} (mc.solve on the cvxpy model, blocks [U], [V], "
          f"solver={args.solver!r}): a partial minimum, no global claim")
    U, V = cp.Variable((m, k), name="U"), cp.Variable((k, n), name="V")
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(Y - U @ V) + lam / 2 * (cp.sum_squares(U) + cp.sum_squares(V))))
    res = mc.solve(prob, [[U], [V]], algorithm=args.algorithm, solver=args.solver, seed=0, tol=args.tol,
                   max_iters=args.max_iters, verbose=args.verbose, progress=False if args.quiet else None)
    print(textwrap.indent(res.summary(), "  "))
    print(f"  block solves per backend: {res.backends_used}")
    print(f"  closed-form check: relative gap {(res.objective - exact) / max(1.0, abs(exact)):.2e}")
    print()
    ok = certified and confirmed and res.status == "converged"
    if not certified:
        verdict = (f"NOT certified: grow ended {found.status!r}, global optimality "
                   f"{found.certificate.global_optimal}")
    elif not confirmed:
        verdict = f"certified, but the closed form differs by {grow_gap:.2e} (> {CLOSED_FORM_RTOL:g}): a bug"
    else:
        verdict = "globally optimal (proven by grow's certificate, confirmed by the closed form)"
    print(f"result: {verdict}; {args.algorithm} ended {res.status!r}; "
          f"{time.perf_counter() - started:.2f}s after imports")
    return EXIT_OK if ok else EXIT_FAILED


# -- solvers ---------------------------------------------------------------------------------------------
def _solvers(args: argparse.Namespace) -> int:
    rows = mc.available_solvers()
    print(f"{'solver':<10} {'installed':<10} {'licence':<14} {'available':<10} {'version':<12} {'classes':<24} note")
    for r in rows:
        note = ""
        if r.installed and r.licence == "missing":
            note = f"installed but unlicensed: {r.detail}".strip().rstrip(":")
        elif r.licence == "size-limited":
            note = r.detail or "size-limited licence"
        elif not r.installed:
            note = "not installed"
        note = "; ".join(n for n in (r.scope, note) if n)
        print(f"{r.name:<10} {str(r.installed):<10} {r.licence:<14} {str(r.available):<10} "
              f"{(r.version or '-'):<12} {','.join(sorted(r.classes)) or '-':<24} {note}")
    return EXIT_OK


# -- bench -----------------------------------------------------------------------------------------------
def _solver_list(spec: str) -> list[str]:
    if spec.strip().lower() == "all":
        return [r.name for r in available_solvers() if r.available]
    names = [s.lower() for s in _csv(spec, "--solvers") or []]
    for name in names:
        if name == "auto":
            continue
        backend = get_backend(name)  # UnknownSolverError lists the known names
        info = backend.info()
        if not info.installed:
            raise _Unavailable(f"solver {name!r} is not installed: {backend.install_hint()}")
        if not info.available:
            raise _Unavailable(f"solver {name!r} is installed but has no licence ({info.detail}); "
                               "drop it from --solvers or install a licence")
    return names


class _Unavailable(Exception):
    pass


def _bench(args: argparse.Namespace) -> int:
    for option, value in (("--out", args.out), ("--scheduler", args.scheduler)):
        if value is not None and not value.strip():
            return _usage(f"{option} {value!r} names nothing: give a {'directory' if option == '--out' else 'address'}"
                          ", or leave the option out")
    if args.resume and not args.out:
        return _usage("--resume needs --out RUN_DIR: the run directory to finish")
    suite = DEFAULT_SUITE if args.suite is None else args.suite
    if suite not in SUITES:
        return _usage(f"unknown suite {suite!r}; known suites: {', '.join(SUITES)}")
    problems = _csv(args.problems, "--problems")
    unknown = [p for p in problems or () if p not in PROBLEMS]
    if unknown:
        return _usage(f"unknown problem(s) {', '.join(unknown)}; known: {', '.join(PROBLEMS)}")
    try:
        solvers = _solver_list(DEFAULT_SOLVERS if args.solvers is None else args.solvers)
    except UnknownSolverError as exc:
        return _usage(str(exc))
    except _Unavailable as exc:
        return _fail(EXIT_UNAVAILABLE, str(exc))
    seeds = list(range(1 if args.seeds is None else args.seeds)) if args.seed_list is None else args.seed_list
    options = BenchOptions(suite=suite, solvers=solvers, seeds=seeds, methods=_csv(args.methods, "--methods"),
                           problems=problems, max_iters=args.max_iters, time_limit=args.time_limit,
                           tol=DEFAULT_TOL if args.tol is None else args.tol)
    if args.resume:
        conflicts = _resume_conflicts(args, options, read_run(args.out)["options"])
        if conflicts:
            return _usage(f"--resume finishes the run in {args.out} with the options it was started with; "
                          f"{'; '.join(conflicts)}: drop those options, or start a new run with another --out")
    if args.list:
        if args.resume:  # the run's own cases, each with the status of its record
            for case_id, status in case_states(args.out):
                print(f"{case_id}\t{status or 'to run'}")
        else:
            for case in list_cases(options):
                print(case.id)
        return EXIT_OK
    if not args.resume and not list_cases(options):
        return _usage(f"no case matches: {_why_no_case(options)}")
    out = args.out or f"runs/{suite}-{time.strftime('%Y%m%d-%H%M%S')}"
    kind = "dask" if (args.dask or args.scheduler) else ("processes" if args.workers else None)
    try:
        executor = make_executor(kind, args.workers, address=args.scheduler, threads_per_worker=args.threads_per_worker)
    except SolverUnavailableError as exc:
        return _fail(EXIT_UNAVAILABLE, str(exc))
    if args.verbose:
        logging.getLogger("distributed").setLevel(logging.INFO)

    def on_record(r: dict) -> None:
        gap = "" if r.get("gap") is None else f" gap {r['gap']:.2e}"
        obj = "" if r.get("objective") is None else f" objective {r['objective']:.10g}"
        logger.info("%s: %s%s%s in %.2fs%s", r["id"], r["status"], obj, gap, r["wall_time"],
                    f" — {r['error']}" if r.get("error") else "")

    show_bar = not args.quiet and not args.verbose and sys.stderr.isatty()
    started = time.perf_counter()
    try:
        # in-process cases get the same BLAS/OpenMP thread limit as pool workers (no oversubscription)
        with executor, threadpool_limits(limits=args.threads_per_worker if kind is None else None):
            summary = run_bench(out, options, resume=args.resume, executor=executor,
                                command=["multiconvex", *sys.argv[1:]] if args.argv is None else args.argv,
                                on_record=on_record, progress=show_bar)
    except KeyboardInterrupt:
        print(f"multiconvex: interrupted: finished cases are saved in {out}; "
              f"`multiconvex bench --resume --out {out}` runs the rest", file=sys.stderr)
        return EXIT_INTERRUPTED
    errors = len(summary.failed) + len(summary.failed_before)
    if not args.quiet:
        before = f" ({len(summary.failed_before)} recorded by earlier sessions)" if summary.failed_before else ""
        print(f"{summary.ran} cases run, {summary.skipped} already done, {summary.total} in the suite; "
              f"{errors} errors{before}; {time.perf_counter() - started:.1f}s; results in {summary.run_dir}")
        for case_id in summary.failed_before:
            print(f"  error (earlier session): {case_id}")
        for case_id in summary.failed:
            print(f"  error: {case_id}")
        if summary.failed_before:
            print("  a case with an error record is not run again by --resume: delete its line from "
                  f"{summary.run_dir / 'results.jsonl'} to run it again")
    if args.report:
        path = render([summary.run_dir], tol=args.success_tol)
        if not args.quiet:
            print(f"report: {path}")
    return EXIT_FAILED if errors else EXIT_OK


def _resume_conflicts(args: argparse.Namespace, given: BenchOptions, stored: dict) -> list[str]:
    """The options on a ``--resume`` command line that differ from the run's own (those left out never do)."""
    conflicts = []
    checks: list[tuple[str, Any, Any, Any]] = [
        ("--suite", args.suite, given.suite, stored["suite"]),
        ("--solvers", args.solvers, set(given.solvers), set(stored["solvers"])),
        ("--seeds" if args.seed_list is None else "--seed-list", args.seeds if args.seed_list is None
         else args.seed_list, sorted(given.seeds), sorted(stored["seeds"])),
        ("--methods", args.methods, set(given.methods or ()), set(stored["methods"] or ())),
        ("--problems", args.problems, set(given.problems or ()), set(stored["problems"] or ())),
        ("--max-iters", args.max_iters, given.max_iters, stored["max_iters"]),
        ("--time-limit", args.time_limit, given.time_limit, stored["time_limit"]),
        ("--tol", args.tol, given.tol, stored["tol"]),
    ]
    for option, typed, mine, theirs in checks:
        if typed is not None and mine != theirs:
            shown = ",".join(map(str, sorted(theirs))) if isinstance(theirs, set) else _short_list(theirs)
            conflicts.append(f"{option} differs from the run's ({shown or 'all'})")
    return conflicts


def _short_list(value: Any) -> str:
    if isinstance(value, list) and len(value) > 6:
        return ",".join(map(str, value[:5])) + f",... ({len(value)})"
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _why_no_case(options: BenchOptions) -> str:
    """Which filter leaves ``options`` without a case: the first of --problems, --methods, --solvers that does."""
    entries = SUITES[options.suite]
    in_suite = [name for name, _ in entries]
    if options.problems:
        outside = [p for p in options.problems if p not in in_suite]
        if len(outside) == len(options.problems):
            return f"suite {options.suite!r} has no problem {', '.join(outside)} (its problems: {', '.join(in_suite)})"
    chosen = [(name, methods) for name, methods in entries if not options.problems or name in options.problems]
    offered = {m for name, methods in chosen
               for m in (methods if methods is not None else (*OURS, *PROBLEMS[name].peers))}
    if options.methods and not offered & set(options.methods):
        return (f"no problem chosen from suite {options.suite!r} is run with --methods {','.join(options.methods)} "
                f"(their methods: {', '.join(sorted(offered))})")
    return (f"none of --solvers {','.join(options.solvers)} can solve the blocks of the methods chosen "
            "(`multiconvex solvers` lists what each backend solves; 'auto' picks one for our methods)")


# -- report ----------------------------------------------------------------------------------------------
def _report(args: argparse.Namespace) -> int:
    if args.out is not None and not args.out.strip():
        return _usage(f"--out {args.out!r} names nothing: give a directory, or leave the option out")
    try:
        path = render(args.run_dirs, out=args.out, tol=args.tol, shift=args.shift, plots=not args.no_plots)
    except RunDirError as exc:
        return _fail(EXIT_RUN_DIR, str(exc))
    if not args.quiet:
        print(f"report: {path}")
    return EXIT_OK


# -- plumbing --------------------------------------------------------------------------------------------
def _csv(spec: str | None, option: str) -> list[str] | None:
    """A comma-separated list of names; ``None`` when the option was not given, never an empty list."""
    if spec is None:
        return None
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise InvalidInputError(f"{option}={spec!r} names nothing: give comma-separated names, or leave the "
                                "option out for all of them.")
    return names


def _usage(message: str) -> int:
    print(f"multiconvex: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _fail(code: int, message: str) -> int:
    print(f"multiconvex: error: {message}", file=sys.stderr)
    return code


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line (exit 2) instead of the usage block."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (`{self.prog} --help` lists the options)\n")


def _typed(parse: Callable[..., Any], option: str, **bounds: Any) -> Callable[[str], Any]:
    """An argparse ``type=`` that checks with :mod:`multiconvex.validation` (one message for CLI and API)."""

    def convert(text: str) -> Any:
        try:
            return parse(text, option, **bounds)
        except InvalidInputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = option  # argparse names the type in some messages
    return convert


def _count(option: str, minimum: int = 1, maximum: int | None = None) -> Callable[[str], int]:
    return _typed(parse_int, option, minimum=minimum, maximum=maximum)


def _nonneg(option: str) -> Callable[[str], float]:
    return _typed(parse_number, option, minimum=0.0)


def _positive(option: str) -> Callable[[str], float]:
    return _typed(parse_number, option, minimum=0.0, strict=True)


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    noise = common.add_mutually_exclusive_group()
    noise.add_argument("-q", "--quiet", action="store_true", help="print only errors (no progress bar)")
    noise.add_argument("-v", "--verbose", action="store_true", help="log one line per iteration / benchmark case")
    parser = _Parser(prog="multiconvex", description=DESCRIPTION,
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"multiconvex {mc.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sol = sub.add_parser("solvers", parents=[common], help="list every backend: installed, licence, version",
                         description="List every backend in the registry: installed, licence state (an installed "
                                     "MOSEK without a licence file is 'missing' and not available), version, "
                                     "problem classes.")
    sol.set_defaults(func=_solvers)

    demo = sub.add_parser("demo", parents=[common],
                          help="prove a factorization of the bundled digits data globally optimal",
                          description="Matrix factorization of scikit-learn's bundled digits data: `grow` proves it "
                                      "globally optimal (the certificate is printed and checked against the closed "
                                      "form, singular value soft-thresholding), then the block method chosen runs on "
                                      "the same model for comparison. Exit 1 when a run did not converge or the "
                                      "certificate does not hold.")
    demo.add_argument("--samples", type=_count("--samples", 1, DIGITS_ROWS), default=600,
                      help=f"rows of the digits data, 1..{DIGITS_ROWS} (default 600)")
    demo.add_argument("--rank", type=_count("--rank"), default=12,
                      help="factors of the comparison run (default 12)")
    demo.add_argument("--lam", type=_nonneg("--lam"), default=8.0, help="weight decay λ >= 0 (default 8)")
    demo.add_argument("--solver", default="auto", help="backend of the comparison run (default auto)")
    demo.add_argument("--algorithm", default="gauss-seidel", choices=["gauss-seidel", "jacobi"],
                      help="block method of the comparison run (default gauss-seidel)")
    demo.add_argument("--tol", type=_nonneg("--tol"), default=1e-8, help="relative tolerance (default 1e-8)")
    demo.add_argument("--threads", type=_count("--threads"), default=1,
                      help="BLAS/OpenMP threads (default 1: the matrices are small, more threads only contend)")
    demo.add_argument("--max-iters", type=_count("--max-iters"), default=500,
                      help="iterations of the comparison run and of each local descent of grow (default 500)")
    demo.set_defaults(func=_demo)

    bench = sub.add_parser(
        "bench", parents=[common], help="run a benchmark suite into a resumable run directory",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Run a suite: every problem x method x backend x seed is one case. Each case records the final "
            "objective, gap to the reference optimum where known, status, certificate, iterations, wall, CPU and "
            "solver time, memory the case added, versions and machine. Records are appended to OUT/results.jsonl as "
            "cases finish (OUT/results.csv at the end; OUT/run.json holds the command, seeds and versions), so an "
            "interrupted run loses nothing finished and `--resume` runs only the rest. Cases run in-process by "
            "default, on a local process pool with --workers N, on a Dask LocalCluster with --dask, or on an "
            "existing Dask cluster with --scheduler ADDRESS.", 100),
        epilog="suites (problem: methods; * = ours + every peer of the problem):\n" + "\n".join(
            textwrap.fill(f"{name}: " + "; ".join(f"{p} ({'*' if m is None else ','.join(m)})" for p, m in entries),
                          100, initial_indent="  ", subsequent_indent="      ", break_on_hyphens=False)
            for name, entries in SUITES.items() if name != "all") + "\n  all: every suite above\n\n" + EPILOG)
    bench.add_argument("--suite", help=f"suite to run (default: {DEFAULT_SUITE})")
    bench.add_argument("--solvers",
                       help="comma-separated backends for our methods and the DMCP-style loop, or 'all' "
                            "(every available backend); each case uses only backends that can solve its blocks "
                            f"(default: {DEFAULT_SOLVERS})")
    bench.add_argument("--seeds", type=_count("--seeds", 1, MAX_SEEDS),
                       help=f"run seeds 0..N-1, N <= {MAX_SEEDS} (default: 1)")
    bench.add_argument("--seed-list", type=_typed(parse_int_list, "--seed-list", minimum=0),
                       help="explicit comma-separated seeds (overrides --seeds)")
    bench.add_argument("--methods", help="only these methods (e.g. gauss-seidel,jacobi,dmcp-loop,sklearn-cd,"
                                         "sklearn-mu,torch-adam,torch-gd)")
    bench.add_argument("--problems", help="only these problems of the suite")
    bench.add_argument("--time-limit", type=_positive("--time-limit"),
                       help="seconds per case (ours and the iterative peers)")
    bench.add_argument("--max-iters", type=_count("--max-iters"),
                       help="outer iterations per case (default: the problem's own)")
    bench.add_argument("--tol", type=_nonneg("--tol"),
                       help=f"stopping tolerance of our block methods, the DMCP-style loop and scikit-learn's NMF "
                            f"(default {DEFAULT_TOL:g}); the torch peers run their own rule (GD: a step that "
                            "gains at most 1e-12 relative; Adam: none) for at most 3,000 steps or --time-limit; grow "
                            "and the convex reformulation use their own defaults")
    bench.add_argument("--out", help="run directory (default: runs/SUITE-TIMESTAMP)")
    bench.add_argument("--resume", action="store_true",
                       help="finish the run in --out: re-read its options, skip finished cases (with --list: its "
                            "cases and their status)")
    bench.add_argument("--workers", type=_count("--workers"), help="run cases on a local process pool of N workers")
    bench.add_argument("--dask", action="store_true", help="run cases on a Dask LocalCluster (--workers processes)")
    bench.add_argument("--scheduler", metavar="ADDRESS",
                       help="run cases on an existing Dask cluster, e.g. tcp://host:8786")
    bench.add_argument("--threads-per-worker", type=_count("--threads-per-worker"), default=1,
                       help="BLAS/OpenMP threads per worker process, and for in-process cases "
                            "(default 1: no oversubscription)")
    bench.add_argument("--report", action="store_true", help="write the report when the run ends")
    bench.add_argument("--success-tol", type=_nonneg("--success-tol"), default=1e-4,
                       help="tolerance of success in --report")
    bench.add_argument("--list", action="store_true", help="print the case ids and exit")
    bench.set_defaults(func=_bench, argv=None)

    rep = sub.add_parser("report", parents=[common], help="markdown tables and PNG plots from run directories",
                         description="Write RUN_DIR/report.md and RUN_DIR/plots/*.png from RUN_DIR/results.jsonl: a "
                                     "table per problem, per method/backend success rate and shifted geometric mean "
                                     "of time, objective-against-time plots, a performance profile, the "
                                     "environment. More run directories are compared in one extra table.")
    rep.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    rep.add_argument("--out", help="where to write (default: the first RUN_DIR)")
    rep.add_argument("--tol", type=_nonneg("--tol"), default=1e-4, help="relative tolerance of success (default 1e-4)")
    rep.add_argument("--shift", type=_nonneg("--shift"), default=1.0,
                     help="shift of the geometric mean, seconds (default 1)")
    rep.add_argument("--no-plots", action="store_true", help="tables only")
    rep.set_defaults(func=_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (argparse's own exits raise ``SystemExit``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "bench" and argv is not None:
        args.argv = ["multiconvex", *argv]
    level = logging.ERROR if args.quiet else (logging.INFO if args.verbose else logging.WARNING)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    for name in ("multiconvex", "multiconvex.cli", "multiconvex.bench"):  # mc.solve resets "multiconvex"
        logging.getLogger(name).setLevel(level)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("multiconvex: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    # one clear line, not a traceback, for every error a user can cause
    except RunDirError as exc:
        return _fail(EXIT_RUN_DIR, str(exc))
    except (LicenceError, SolverUnavailableError) as exc:
        return _fail(EXIT_UNAVAILABLE, str(exc))
    except InvalidInputError as exc:  # UnknownSolverError included
        return _usage(str(exc))
    except OSError as exc:  # a run directory or report that cannot be written (permissions, disk full)
        where = f" {exc.filename}" if exc.filename else ""
        return _fail(EXIT_RUN_DIR, f"cannot use{where}: {exc.strerror or exc}")
    except Exception as exc:  # noqa: BLE001 - a bug of ours: one line, the traceback with --verbose
        if args.verbose:
            traceback.print_exc()
        return _fail(EXIT_FAILED, f"internal error {type(exc).__name__}: {exc} (rerun with --verbose for the "
                                  "traceback, and please report it)")


if __name__ == "__main__":
    sys.exit(main())
