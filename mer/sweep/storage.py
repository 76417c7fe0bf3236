"""Where Optuna studies live: SQLite on a laptop, a journal file for many processes on one node, any SQLAlchemy URL
(PostgreSQL, MySQL) for a cluster; plus reading a study's best trial back as config overrides.
"""

from __future__ import annotations

import copy
import os
import random
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from mer.errors import MerError

if TYPE_CHECKING:
    from mer.config import Config

JOURNAL_SUFFIXES = (".log", ".journal")
HEARTBEAT_S = 60  # RDB storages: a RUNNING trial whose heartbeat is older than GRACE_S is failed (and retried)
GRACE_S = 300  # both can be changed with the environment variables MER_HEARTBEAT_S / MER_GRACE_S
SCHEMA_RETRIES = 20  # attempts to open a new database while another process creates its tables
STALE_RETRIES = 1  # a trial failed for a stopped heartbeat is queued again this often (grid: see MAX_POINT_FAILURES)

DRIVERS = {
    "psycopg2": "pip install mer-lightning[postgres]",
    "psycopg": (
        "pip install mer-lightning[postgres] and write the URL as postgresql+psycopg2://..., "
        "or pip install 'psycopg[binary]'"
    ),
    "pymysql": "pip install PyMySQL",
    "MySQLdb": "pip install mysqlclient",
}


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, for messages and logs."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a SQLAlchemy URL: nothing to hide
        return url


def journal_path(url: str) -> Path | None:
    """The file of a `journal:<path>` URL or of a bare `*.log` / `*.journal` path; None for SQLAlchemy URLs."""
    if url.startswith("journal:"):
        rest = url[len("journal:") :]
        return Path(rest[2:] if rest.startswith("//") else rest)
    if "://" not in url and url.endswith(JOURNAL_SUFFIXES):
        return Path(url)
    return None


def default_storage(out_dir: Path, workers: int = 1) -> tuple[str, str | None]:
    """(URL, note) for a sweep folder: an existing study file first, else SQLite, or a journal file for workers > 1."""
    journal, db = out_dir / "study.journal", out_dir / "study.db"
    if journal.exists():
        return f"journal:{journal}", None
    if db.exists():
        note = (
            f"resuming the SQLite study in {db} with {workers} processes; if you see 'database is locked', "
            "start a new sweep folder (it will use a journal file)"
            if workers > 1
            else None
        )
        return f"sqlite:///{db}", note
    if workers > 1:
        return (
            f"journal:{journal}",
            f"{workers} workers: using the journal file {journal} (SQLite is fragile with several processes)",
        )
    return f"sqlite:///{db}", None


def heartbeat_settings() -> tuple[int, int]:
    """(heartbeat interval, grace period) in seconds: MER_HEARTBEAT_S / MER_GRACE_S, else HEARTBEAT_S / GRACE_S."""
    try:
        beat = int(os.environ.get("MER_HEARTBEAT_S") or HEARTBEAT_S)
        grace = int(os.environ.get("MER_GRACE_S") or GRACE_S)
    except ValueError:
        raise MerError("MER_HEARTBEAT_S and MER_GRACE_S must be whole numbers of seconds") from None
    if beat < 1 or grace <= beat:
        raise MerError(f"need 1 <= MER_HEARTBEAT_S < MER_GRACE_S, got {beat} and {grace}")
    return beat, grace


def retry_stale_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Heartbeat callback for a trial whose worker stopped beating (killed, preempted, node lost): queue its
    parameters again with Optuna's RetryHeartbeatStaleTrialCallback, the copy saying why (`retry_of`, `retry_reason`).
    """
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    retry = copy.deepcopy(trial)  # the queued copy must not look like it is held by the dead worker
    retry.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in ("worker", "progress")}
    retry.user_attrs.update(retry_of=trial.number, retry_reason=f"no heartbeat for {heartbeat_settings()[1]} s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry=STALE_RETRIES)(study, retry)


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail (and queue again) the RUNNING trials of any host whose heartbeat stopped; nothing without heartbeats.

    Optuna does this only when a trial starts, so a resumed sweep with nothing else to start would never do it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def open_storage(url: str, create: bool = True) -> optuna.storages.BaseStorage:
    """An Optuna storage for `url`; `create=False` refuses to make a new empty SQLite/journal file.

    Unreachable databases and missing drivers are one-line `MerError`s (never a SQLAlchemy traceback).
    """
    path = journal_path(url)
    if path is not None:
        if not create and not path.is_file():
            raise MerError(f"no journal storage at {path} (has the sweep run yet?)")
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(str(path)))
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - ArgumentError and friends
        raise MerError(
            f"storage '{url}' is not understood: give sqlite:///path.db, postgresql://user@host/db, "
            "journal:<path> or a *.log / *.journal file"
        ) from None
    engine_kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            if not create and not Path(db).is_file():
                raise MerError(f"no SQLite storage at {db} (has the sweep run yet?)")
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 60}}
    try:
        return _rdb_storage(url, engine_kwargs)
    except ImportError as exc:  # Optuna re-raises the driver's ModuleNotFoundError as its own ImportError
        cause = exc.__cause__ if isinstance(exc.__cause__, ImportError) else exc
        name = cause.name or ("psycopg2" if parsed.get_backend_name() == "postgresql" else "the driver")
        fix = DRIVERS.get(name, f"pip install {name}")
        raise MerError(f"storage {mask_url(url)}: the database driver '{name}' is not installed; {fix}") from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy OperationalError etc.
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = first[0] if first else exc.__class__.__name__
        raise MerError(f"cannot open storage {mask_url(url)}: {reason}") from None


def _creation_race(exc: Exception) -> bool:
    """True when `exc` says another process was creating the same Optuna schema at the same moment."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    return "already exists" in text or ("alembic_version" in text and ("unique" in text or "duplicate" in text))


def _rdb_storage(url: str, engine_kwargs: dict[str, Any]) -> optuna.storages.RDBStorage:
    """Optuna's RDBStorage, retried while another process creates the same new database's tables.

    Optuna creates the tables and stamps the schema version without a lock, so two processes opening one new
    database at once (a sweep and its monitor, array tasks starting together) can collide; the loser's retry
    then finds the schema in place.
    """
    beat, grace = heartbeat_settings()
    attempt = 0
    while True:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=beat,
                    grace_period=grace,
                    heartbeat_stale_trial_callback=retry_stale_trial,
                )
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy IntegrityError / OperationalError / ProgrammingError
            if attempt == SCHEMA_RETRIES or not _creation_race(exc):
                raise
            attempt += 1
            time.sleep(0.05 * attempt + random.random() * 0.1)


def split_study_spec(spec: str) -> tuple[str, str | None]:
    """'STORAGE_URL::STUDY' → (url, study); without '::' the study is None (the storage's only study)."""
    if "::" in spec:
        url, _, name = spec.rpartition("::")
        return url, name or None
    return spec, None


def load_existing_study(url: str, name: str | None) -> optuna.Study:
    """Load a study that must already exist; with no name, the storage must hold exactly one."""
    storage = open_storage(url, create=False)
    names = optuna.get_all_study_names(storage)
    if name is None:
        if len(names) != 1:
            raise MerError(
                f"storage {mask_url(url)} holds {len(names)} studies ({', '.join(names) or 'none'}); "
                "name one as STORAGE_URL::STUDY"
            )
        name = names[0]
    if name not in names:
        raise MerError(f"no study '{name}' in {mask_url(url)} (it holds: {', '.join(names) or 'none'})")
    return optuna.load_study(study_name=name, storage=storage)


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The best COMPLETE trial, or a one-line error when none has finished."""
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        raise MerError(f"study '{study.study_name}' has no complete trial yet (run `mer sweep` until one finishes)")
    return study.best_trial


def leaky_warning(study: optuna.Study) -> str | None:
    """The warning every report of a leaky-objective study carries, or None."""
    if study.user_attrs.get("leaky"):
        return (
            f"warning: study '{study.study_name}' used the LEAKY objective (trials scored on the LOSO test folds, as "
            "papers did); a LOSO run with its best parameters is optimistically biased"
        )
    return None


def study_reference(url: str, study: str) -> str:
    """`STORAGE_URL::STUDY` with any password masked: what `selected_by` records (never a secret in a config)."""
    return f"{mask_url(url)}::{study}"


def _open_reference(spec: str) -> tuple[optuna.Study, str]:
    """(the study, its storage URL) of `STORAGE_URL::STUDY` or of a sweep YAML file (its default storage)."""
    from mer.sweep.spec import load_sweep

    if spec.endswith((".yaml", ".yml")) and Path(spec).is_file():
        sweep = load_sweep(spec)
        url, _ = default_storage(sweep.out_dir)
        return load_existing_study(url, sweep.study), url
    url, name = split_study_spec(spec)
    return load_existing_study(url, name), url


def _study_record(study: optuna.Study, url: str, best: optuna.trial.FrozenTrial, **facts: Any) -> dict[str, Any]:
    """The `from-study` selection record of `best`, with the study's objective and subjects as it recorded them."""
    from mer.provenance import from_study_selection

    attrs = study.user_attrs
    return from_study_selection(study.study_name, mask_url(url), str(attrs.get("objective", "?")),
                                attrs.get("inner_subjects"), best.params, **facts)  # fmt: skip


def best_overrides(spec: str) -> list[str]:
    """Dotted `key=value` overrides of the best trial of `STORAGE_URL::STUDY` (used by `mer loso --from-study`),
    ending with `selected_by=STORAGE_URL::STUDY`.

    `spec` may also be a sweep YAML file: its default storage and study name are used. Warns on stderr when the
    study's objective was leaky.
    """
    return best_selection(spec)[0]


def best_selection(spec: str) -> tuple[list[str], dict[str, Any]]:
    """(overrides of the best trial plus `selected_by`, the run's `from-study` selection record) for `mer loso
    --from-study`.

    The record holds the study's objective, its storage (password masked) and the subjects its trials were scored
    on, as the study itself recorded them (user attr `inner_subjects`; None for a study from before that record).
    """
    from mer.config import as_override
    from mer.sweep.spec import trial_overrides

    study, url = _open_reference(spec)
    best = best_trial(study)
    warning = leaky_warning(study)
    if warning:
        print(warning, file=sys.stderr)
    reference = as_override("selected_by", study_reference(url, study.study_name))
    return [*trial_overrides(best.params), reference], _study_record(study, url, best)


def reference_selection(reference: str, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The selection record of values that a config's `selected_by` says study `reference` chose (an override line
    of `mer sweep --best`): `from-study`, read from the study itself, with `edited` naming the keys whose value in
    `values` (the run's flattened config) differs from its best trial's; `unverified` when the study cannot be
    opened or has no complete trial, said on stderr (a LOSO run is then stamped LEAKY, never `fixed`)."""
    from mer.provenance import unverified_selection

    try:
        study, url = _open_reference(reference)
        best = best_trial(study)
    except Exception as exc:  # noqa: BLE001 - any failure to read the study leaves the selection unverified
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        print(f"UNVERIFIED selection: selected_by={reference} cannot be read ({reason}); the report will be "
              "stamped LEAKY", file=sys.stderr)  # fmt: skip
        return unverified_selection(reference, reason)
    warning = leaky_warning(study)
    if warning:
        print(warning, file=sys.stderr)
    edited = {k: [values.get(k), v] for k, v in best.params.items() if values is not None and values.get(k) != v}
    return _study_record(study, url, best, **({"edited": edited} if edited else {}))


def selection_of(cfg: Config) -> dict[str, Any]:
    """The selection record of a config's values: fixed, or what the study named by `selected_by` says (from-study,
    with the keys edited since; unverified, said loudly, when it cannot be read)."""
    from mer.config import flatten, to_dict
    from mer.provenance import fixed_selection

    if not cfg.selected_by:
        return fixed_selection()
    return reference_selection(cfg.selected_by, flatten(to_dict(cfg)))
