"""How a sweep looks while it runs: a live rich table of the trials in a terminal, one line per trial otherwise.

Nothing here changes a study; it only reads trials (their state, parameters, value and progress note).
"""

from __future__ import annotations

import time
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.live import Live
from rich.table import Table

from mer.config import format_value
from mer.sweep.spec import SweepConfig


def trial_params(t: FrozenTrial) -> dict[str, Any]:
    """The point a trial holds: its queued `fixed_params` (a retried grid point) or its suggested params."""
    return dict(t.system_attrs.get("fixed_params", t.params))


def _short(key: str) -> str:
    parts = key.split(".")
    return ".".join(parts[-2:]) if len(parts) > 2 else key


def _state(t: FrozenTrial) -> str:
    if t.state == TrialState.FAIL and "duplicate_of" in t.user_attrs:
        return f"SKIP (dup #{t.user_attrs['duplicate_of']})"
    if t.state == TrialState.RUNNING and t.user_attrs.get("progress"):
        return f"RUNNING {t.user_attrs['progress']}"
    return t.state.name


def _value(t: FrozenTrial) -> str:
    if t.value is not None:
        return f"{t.value:.4f}"
    if t.intermediate_values:
        step = max(t.intermediate_values)
        return f"({t.intermediate_values[step]:.4f} @{step})"
    return ""


def trial_line(t: FrozenTrial, metric: str) -> str:
    """One line per finished trial (for logs and non-terminal output)."""
    params = " ".join(f"{k}={format_value(v)}" for k, v in sorted(trial_params(t).items()))
    secs = f" ({t.duration.total_seconds():.0f} s)" if t.duration else ""
    return f"trial {t.number:>3} {_state(t):<12} {metric}={_value(t) or '-':<8} {params}{secs}"


def trials_table(study: optuna.Study, spec: SweepConfig, limit: int = 30) -> Table:
    """A rich Table of the study's trials (number, state, each parameter, value), best marked, newest last."""
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    best = None
    if done:
        pick = max if spec.direction == "maximize" else min
        best = pick(done, key=lambda t: t.value).number  # type: ignore[arg-type, return-value]
    counts = {s: sum(t.state == s for t in trials) for s in TrialState}
    budget = f"/{spec.budget()}" if spec.budget() else ""
    failed = sum(t.state == TrialState.FAIL and "duplicate_of" not in t.user_attrs for t in trials)
    title = (f"{'LEAKY ' if spec.leaky else ''}{spec.study}: {counts[TrialState.COMPLETE]}{budget} done, "
             f"{counts[TrialState.PRUNED]} pruned, {counts[TrialState.RUNNING]} running, {failed} failed")  # fmt: skip
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("state")
    for key in sorted(spec.search):
        table.add_column(_short(key), justify="right")
    table.add_column(spec.metric, justify="right")
    table.add_column("s", justify="right")
    shown = trials[-limit:]
    for t in shown:
        params = trial_params(t)
        row = [str(t.number) + (" *" if t.number == best else ""), _state(t)]
        row += [format_value(params[k]) if k in params else "" for k in sorted(spec.search)]
        row += [_value(t), f"{t.duration.total_seconds():.0f}" if t.duration else ""]
        table.add_row(*row, style="bold green" if t.number == best else None)
    return table


class Display:
    """Live table in a terminal (rich Live); one line per finished trial otherwise (logs, CI, SLURM)."""

    def __init__(self, study: optuna.Study, spec: SweepConfig, live: bool | None = None) -> None:
        self.study, self.spec = study, spec
        self.console = Console()
        self.live_on = self.console.is_terminal if live is None else live
        self.live: Any = None
        self.printed: set[int] = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        self.last = 0.0

    def __enter__(self) -> Display:
        if self.live_on:
            self.live = Live(trials_table(self.study, self.spec), console=self.console, refresh_per_second=2)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.refresh(force=True)
            self.live.__exit__(*exc)
            if not self.console.is_terminal:
                print()

    def refresh(self, force: bool = False) -> None:
        """Redraw the table (terminal) or print the trials that finished since the last call."""
        now = time.monotonic()
        if not force and now - self.last < 0.5:
            return
        self.last = now
        if self.live is not None:
            self.live.update(trials_table(self.study, self.spec))
            return
        for t in self.study.get_trials(deepcopy=False):
            if t.state.is_finished() and t.number not in self.printed:
                self.printed.add(t.number)
                print(trial_line(t, self.spec.metric), flush=True)

    def trial_done(self, _t: FrozenTrial) -> None:
        """Callback after each trial of this process."""
        self.refresh(force=True)
