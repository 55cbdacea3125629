"""``multiconvex report RUN_DIR [RUN_DIR ...]``: markdown tables and PNG plots from raw results.

Everything is computed from ``results.jsonl`` (and ``run.json``), so a report can
be regenerated, and runs compared, at any time:

- per problem: every case with objective, gap to the reference optimum (or to the
  best objective any method found, marked ``*``), status, certificate, iterations,
  times, peak memory;
- per method/backend: success rate at a tolerance and the shifted geometric mean of
  wall time (qpbenchmark's summary): a case succeeds when it ran to an answer and its
  objective is within ``tol · max(1, |f*|)`` of the reference ``f*`` (or of the best
  objective found for that problem when no reference is known). Failed cases count
  with a penalty time: the run's time limit, or else the largest wall time in the run;
- plots (matplotlib, Agg): objective against time per problem, and the Dolan–Moré
  performance profile of wall time;
- the environment the run had.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from .problems import PROBLEMS
from .runner import OK_STATUSES, RunDirError, read_records, read_run
from .suites import SEEDLESS


def fmt(x: Any, spec: str = ".10g") -> str:
    """How numbers appear in the report (tests parse them back with ``float``)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return format(float(x), spec)


def best_known(records: list[dict]) -> dict[str, float]:
    """Per problem: the reference optimum when known, else the best objective any finished case reached."""
    best: dict[str, float] = {r["problem"]: r["reference"] for r in records if r.get("reference") is not None}
    for r in records:
        if r["problem"] in best and r.get("reference") is not None:
            continue
        if r.get("status") in OK_STATUSES and r.get("objective") is not None and np.isfinite(r["objective"]):
            best[r["problem"]] = min(best.get(r["problem"], math.inf), r["objective"])
    return best


def relative_gap(r: dict, best: dict[str, float]) -> float | None:
    """``(f − f*) / max(1, |f*|)`` against the reference, or the best found."""
    if r.get("objective") is None or r["problem"] not in best:
        return None
    f_star = best[r["problem"]]
    return (r["objective"] - f_star) / max(1.0, abs(f_star))


def succeeded(r: dict, best: dict[str, float], tol: float) -> bool:
    g = relative_gap(r, best)
    return r.get("status") in OK_STATUSES and g is not None and g <= tol


def penalty_time(records: list[dict], time_limit: float | None) -> float:
    if time_limit:
        return float(time_limit)
    return max((r.get("wall_time") or 0.0 for r in records), default=1.0)


def shifted_geometric_mean(times: list[float], shift: float) -> float:
    """``exp(mean(log(t + shift))) − shift``."""
    t = np.asarray(times, dtype=float)
    return float(np.exp(np.mean(np.log(t + shift))) - shift)


def summarise(records: list[dict], *, tol: float = 1e-4, shift: float = 1.0,
              time_limit: float | None = None) -> list[dict]:
    """Per method/backend: cases, successes, success rate, shifted geometric mean of time (penalised failures)."""
    best = best_known(records)
    penalty = penalty_time(records, time_limit)
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        if r.get("status") == "licence_limit":
            continue  # not run: the licence, not the method, decided
        groups[(r["method"], r["backend"])].append(r)
    rows = []
    for (method, backend), rs in sorted(groups.items()):
        ok = [succeeded(r, best, tol) for r in rs]
        times = [r["wall_time"] if s else max(penalty, r.get("wall_time") or 0.0) for r, s in zip(rs, ok)]
        shares = [r["solver_time"] / r["run_time"] for r in rs
                  if r.get("solver_time") is not None and r.get("run_time")]
        rows.append({"method": method, "backend": backend, "cases": len(rs), "successes": int(sum(ok)),
                     "success_rate": sum(ok) / len(rs), "sgm_time": shifted_geometric_mean(times, shift),
                     "solver_share": float(np.median(shares)) if shares else None})
    if rows:
        low = min(r["sgm_time"] + shift for r in rows)
        for r in rows:
            r["sgm_relative"] = (r["sgm_time"] + shift) / low
    return rows


def performance_profile(records: list[dict], tol: float) -> dict[str, np.ndarray]:
    """Per method/backend: the sorted ratios ``t / min t`` over the (problem, seed) instances it ran.

    ``inf`` marks an instance the method ran and failed. An instance a method never ran (not in its
    suite entry, or no backend fits) is left out of that method's profile: it is not a failure.
    The fastest time is taken over the methods that solved the instance.
    """
    best = best_known(records)
    by_instance: dict[tuple, dict[str, float]] = defaultdict(dict)
    seeds = defaultdict(set)
    for r in records:
        seeds[r["problem"]].add(r["seed"])
    for r in records:
        if r.get("status") == "licence_limit":
            continue
        label = f"{r['method']}/{r['backend']}"
        # a method that uses no seed (the MIQPs) ran once for every seed of its problem
        for seed in (seeds[r["problem"]] if r["method"] in SEEDLESS else (r["seed"],)):
            by_instance[(r["problem"], seed)][label] = r["wall_time"] if succeeded(r, best, tol) else math.inf
    ratios: dict[str, list[float]] = defaultdict(list)
    for times in by_instance.values():
        t_min = min(times.values())
        for lab, t in times.items():  # only the methods that ran this instance
            if not np.isfinite(t):
                ratios[lab].append(math.inf)
            else:  # t_min <= t is finite here; a zero time is as fast as the fastest
                ratios[lab].append(t / t_min if t_min > 0 else (1.0 if t == 0 else math.inf))
    return {lab: np.sort(np.array(v)) for lab, v in sorted(ratios.items())}


# -- plots -------------------------------------------------------------------------------------------
def _gap_axis(ax: Any, gaps: list[np.ndarray], scale: float) -> None:
    """A symmetric-log y axis for ``f − f*``: linear within ``±linthresh`` so gaps of exactly 0 (and the
    small negative ones a tolerance allows) sit where they are, logarithmic beyond; ticks on every
    k-th decade so the labels never crowd."""
    from matplotlib.ticker import FixedLocator, LogFormatterSciNotation, NullLocator  # lazy: with pyplot

    values = np.abs(np.concatenate(gaps)) if gaps else np.array([])
    positive = values[np.isfinite(values) & (values > 0)]
    # the linear band stays small next to the data: at most 1e-6 of the objective's scale
    linthresh = min(float(positive.min()) if positive.size else math.inf, 1e-6 * scale)
    linthresh = 10.0 ** math.floor(math.log10(max(linthresh, 1e-300)))
    top = float(positive.max()) if positive.size else linthresh
    ax.set_yscale("symlog", linthresh=linthresh, linscale=0.5)
    lo, hi = math.floor(math.log10(linthresh)), math.ceil(math.log10(max(top, linthresh))) + 1
    step = max(1, math.ceil((hi - lo) / 6))
    decades = [10.0 ** e for e in range(lo, hi + 1, step)]
    has_negative = bool(np.any(np.concatenate(gaps) < 0)) if gaps else False
    ticks = ([-d for d in reversed(decades)] if has_negative else []) + [0.0] + decades
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(LogFormatterSciNotation(base=10, linthresh=linthresh))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.axhspan(-linthresh if has_negative else 0.0, linthresh, color="0.92", zorder=0, lw=0)
    ax.axhline(0.0, color="0.4", lw=0.8, zorder=1)
    if not has_negative:
        ax.set_ylim(bottom=-0.3 * linthresh)


def _plot_objectives(records: list[dict], best: dict[str, float], out: Path) -> list[Path]:
    import matplotlib  # lazy: matplotlib ~0.3 s; backend set before pyplot loads

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    by_problem: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if r.get("trajectory"):
            by_problem[r["problem"]].append(r)
    for problem, rs in sorted(by_problem.items()):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        f_star = best.get(problem)
        colours: dict[str, Any] = {}
        gaps = []
        for r in sorted(rs, key=lambda r: (r["method"], r["backend"], r["seed"])):
            label = f"{r['method']}/{r['backend']}"
            t = np.array([p[0] for p in r["trajectory"]], dtype=float)
            f = np.array([p[1] for p in r["trajectory"]], dtype=float)
            y = f - f_star if f_star is not None else f  # exact: no floor added to zero gaps
            gaps.append(y[np.isfinite(y)])
            line = ax.plot(np.maximum(t, 1e-4), y, drawstyle="steps-post", color=colours.get(label),
                           label=None if label in colours else label, alpha=0.85)[0]
            colours.setdefault(label, line.get_color())
        ax.set_xscale("log")
        ax.set_xlabel("wall time [s] (log)")
        if f_star is not None:
            _gap_axis(ax, gaps, max(1.0, abs(f_star)))
            ref = "reference optimum" if any(r.get("reference") is not None for r in rs) else "best found"
            ax.set_ylabel(f"objective − {ref}\n(symlog: grey band linear, 0 = exactly optimal)")
        else:
            ax.set_ylabel("objective")
        ax.set_title(problem)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / f"objective_{problem}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _plot_profile(profile: dict[str, np.ndarray], out: Path) -> Path | None:
    import matplotlib  # lazy: matplotlib ~0.3 s; backend set before pyplot loads

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    if not profile:
        return None
    finite = np.concatenate([v[np.isfinite(v)] for v in profile.values()] + [np.array([1.0])])
    tau_max = max(2.0, float(finite.max()) * 1.5)
    taus = np.logspace(0, np.log10(tau_max), 200)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, ratios in profile.items():
        ax.plot(taus, [(ratios <= t).mean() for t in taus], label=label, drawstyle="steps-post")
    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")  # 2, 5, 10 rather than 2×10⁰
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain if tau_max < 20 else NullFormatter())
    ax.set_xlabel("τ: wall time within a factor τ of the fastest (log)")
    ax.set_ylabel("fraction of the instances it ran, solved")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("performance profile")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "performance_profile.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- markdown ----------------------------------------------------------------------------------------
PROBLEM_COLUMNS = ("method", "backend", "seed", "status", "objective", "gap", "max block gap", "partial min",
                   "iterations", "wall s", "solver s", "case MB")


def _table(header: tuple[str, ...] | list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def render(run_dirs: list[str | Path], *, out: str | Path | None = None, tol: float = 1e-4,
           shift: float = 1.0, plots: bool = True) -> Path:
    """Write ``report.md`` (and ``plots/*.png``) for the run in ``run_dirs[0]``; more dirs are compared."""
    run_dirs = [Path(d) for d in run_dirs]
    main = run_dirs[0]
    meta = read_run(main)  # a missing or damaged run is refused before anything is written
    records = read_records(main)
    for other in run_dirs[1:]:
        read_records(other), read_run(other)
    out = Path(out) if out else main
    plot_names = ["performance_profile.png"] + sorted({f"objective_{r['problem']}.png" for r in records
                                                       if r.get("trajectory")})
    _check_writable(out, plot_names if plots else [])
    out.mkdir(parents=True, exist_ok=True)
    time_limit = meta["options"].get("time_limit")
    best = best_known(records)
    lines = [f"{REPORT_HEADER} `{meta['options']['suite']}`", "",
             f"Command: `{' '.join(meta.get('command') or ['?'])}`  ",
             f"Started {meta.get('started')}; {len(records)} of {len(meta['cases'])} cases finished; "
             f"seeds {meta['options']['seeds']}; backends {', '.join(meta['options']['solvers'])}.", ""]
    missing = sorted(set(meta["cases"]) - {r["id"] for r in records})
    if missing:
        lines += [f"**Unfinished cases ({len(missing)})**: " + ", ".join(f"`{m}`" for m in missing)
                  + " — `multiconvex bench --resume --out " + str(main) + "` finishes them.", ""]
    summary = summarise(records, tol=tol, shift=shift, time_limit=time_limit)
    lines += ["## Summary per method and backend", "",
              f"Success: ran to an answer and within {tol:g}·max(1, |f*|) of the reference optimum f* "
              f"(or of the best objective found, where no reference is known). Time: shifted geometric mean of "
              f"wall time, shift {shift:g} s, failures counted at {penalty_time(records, time_limit):.3g} s; "
              f"relative: 1 = best. Case MB: growth of the resident memory during the case (peak − start).",
              ""]
    lines += _table(("method", "backend", "cases", "success rate", "sgm time s", "relative", "median solver share"),
                    [[r["method"], r["backend"], str(r["cases"]), f"{r['successes']}/{r['cases']} "
                      f"({100 * r['success_rate']:.0f}%)", fmt(r["sgm_time"], ".4g"), fmt(r["sgm_relative"], ".3g"),
                      "—" if r["solver_share"] is None else f"{100 * r['solver_share']:.0f}%"] for r in summary])
    odd = sorted({f"{r['method']}/{r['backend']}" for r in summary if (r["solver_share"] or 0) > 1.0})
    if odd:
        lines += ["", f"Solver share above 100% ({', '.join(odd)}): the solve times the backend reports add up to "
                      "more than the wall time of the run; read those solver times with care."]
    lines.append("")
    plot_dir = out / "plots"
    if plots:
        plot_dir.mkdir(exist_ok=True)
        profile_path = _plot_profile(performance_profile(records, tol), plot_dir)
        if profile_path:
            lines += ["Performance profile of wall time: each method over the instances it ran (an instance it "
                      "never ran is not counted as a failure).", "",
                      f"![performance profile](plots/{profile_path.name})", ""]
        obj_paths = {p.stem.removeprefix("objective_"): p for p in _plot_objectives(records, best, plot_dir)}
    else:
        obj_paths = {}
    lines += ["## Problems", ""]
    by_problem: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_problem[r["problem"]].append(r)
    for problem in sorted(by_problem):
        rs = sorted(by_problem[problem], key=lambda r: (r["method"], r["backend"], r["seed"]))
        spec = PROBLEMS.get(problem)
        ref = next((r for r in rs if r.get("reference") is not None), None)
        lines += [f"### {problem}", ""]
        if spec:
            lines.append(f"{spec.description}; {spec.size}.  ")
        if ref is not None:
            lines.append(f"Reference optimum: {fmt(ref['reference'])} ({ref.get('reference_note', '')}).")
        elif problem in best:
            note = next((r.get("reference_note") for r in rs if r.get("reference_note")), "")
            lines.append(f"No reference optimum ({note}); gaps marked * are to the best objective found, "
                         f"{fmt(best[problem])}.")
        lines.append("")
        table = []
        for r in rs:
            gap = relative_gap(r, best)
            gap_s = fmt(gap, ".3e") + ("" if gap is None or r.get("reference") is not None else "*")
            status = r.get("status", "?") + (f" ({r['error'][:80]})" if r.get("error") else "")
            table.append([r["method"], r["backend"], str(r["seed"]), status, fmt(r.get("objective")), gap_s,
                          fmt(r.get("max_block_gap"), ".3e"), fmt(r.get("is_partial_minimum")),
                          fmt(r.get("iterations")), fmt(r.get("wall_time"), ".4g"), fmt(r.get("solver_time"), ".4g"),
                          fmt(r.get("case_memory_mb"), ".1f")])
        lines += _table(PROBLEM_COLUMNS, table)
        lines.append("")
        if problem in obj_paths:
            lines += [f"![objective against time: {problem}](plots/{obj_paths[problem].name})", ""]
    if len(run_dirs) > 1:
        lines += _compare(run_dirs, tol=tol, shift=shift)
    env = meta.get("environment", {})
    lines += ["## Environment", "", f"- host `{env.get('host')}`, {env.get('platform')}, Python {env.get('python')}",
              f"- CPU: {env.get('cpu')} ({env.get('cpu_count')} logical CPUs); GPU: {env.get('gpu') or 'none'}",
              "- executor: " + "; ".join(s.get("executor", "?") for s in meta.get("sessions", [])),
              f"- thread pools: {', '.join(env.get('threadpools') or []) or '—'}",
              "- versions: " + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())]
    workers = sorted({r.get("worker", "?") for r in records})
    lines += [f"- workers that ran cases: {', '.join(workers)}", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


#: The first words of every report.md this module writes: the mark that lets it replace its own report.
REPORT_HEADER = "# multiconvex bench: suite"


def _check_writable(out: Path, plot_names: list[str]) -> None:
    """Refuse to write where a file of the user's would be replaced.

    ``report.md`` and ``plots/*.png`` are replaced only when ``report.md`` is one this module wrote
    (it starts with :data:`REPORT_HEADER`); otherwise an existing ``report.md``, or an existing plot
    file of the same name, belongs to someone else.
    """
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} is a file, not a directory: give a directory for report.md and plots/.")
    report = out / "report.md"
    ours = report.is_file() and report.read_bytes()[: len(REPORT_HEADER)].decode("utf-8", "replace") == REPORT_HEADER
    if report.exists() and not ours:
        raise RunDirError(f"{report} exists and was not written by `multiconvex report`: move it away, or give "
                          "--out another directory (nothing was written).")
    if not ours:
        clash = [n for n in plot_names if (out / "plots" / n).exists()]
        if clash:
            raise RunDirError(f"{out / 'plots'} already holds {', '.join(clash[:3])}, not from a multiconvex "
                              "report: move them away, or give --out another directory (nothing was written).")


def _compare(run_dirs: list[Path], *, tol: float, shift: float) -> list[str]:
    lines = ["## Runs compared", ""]
    rows = []
    for d in run_dirs:
        meta = read_run(d)
        for r in summarise(read_records(d), tol=tol, shift=shift, time_limit=meta["options"].get("time_limit")):
            rows.append([str(d), r["method"], r["backend"], f"{r['successes']}/{r['cases']}",
                         fmt(r["sgm_time"], ".4g")])
    return lines + _table(("run", "method", "backend", "successes", "sgm time s"), rows) + [""]
