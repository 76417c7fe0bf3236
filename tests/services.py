"""Real services for the tests, on localhost only: a throwaway PostgreSQL server, a one-node Slurm cluster (munge +
slurmctld + slurmd) and a reader for the `.wandb` files W&B writes offline. A pytest plugin (see tests/conftest.py);
what the services did and how their tests ended is printed in a "services" section of the terminal summary.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

_LINES: list[str] = []  # service events, repeated in the terminal summary
_OUTCOMES: list[str] = []  # results of tests/test_services_*.py


def announce(config: pytest.Config, line: str) -> None:
    """Print a service event to stderr now (whatever the capture mode) and again in the terminal summary."""
    _LINES.append(line)
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        print(line, file=sys.stderr, flush=True)
        return
    with capman.global_and_fixture_disabled():
        print(f"\n{line}", file=sys.stderr, flush=True)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember how each service test ended (shown in the summary, so CI logs name them even with -q)."""
    if "test_services_" not in report.nodeid:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        reason = ""
        if report.skipped and isinstance(report.longrepr, tuple):
            reason = f": {report.longrepr[2]}"
        outcome = "ERROR" if report.when == "setup" and report.failed else report.outcome.upper()
        _OUTCOMES.append(f"{outcome} {report.nodeid} ({report.duration:.1f} s){reason}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The services section: servers started and stopped, then each service test's outcome."""
    if _LINES or _OUTCOMES:
        terminalreporter.section("services")
        for line in _LINES + _OUTCOMES:
            terminalreporter.write_line(line)


def _load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


# ---------------------------------------------------------------- PostgreSQL


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", name)) or (0,)


def postgres_bindir() -> Path | None:
    """The folder with initdb and pg_ctl: Debian's newest /usr/lib/postgresql/N/bin, then PATH, then pg_config."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version_key(p.parent.name))[::-1]
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb") or "").parent)
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out:
            candidates.append(Path(out))
    return next((c for c in candidates if (c / "initdb").is_file() and (c / "pg_ctl").is_file()), None)


def unprivileged_prefix() -> tuple[list[str], int, int]:
    """(command prefix, uid, gid) that runs a program as `nobody` when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return [], os.geteuid(), os.getegid()
    user = pwd.getpwnam("nobody")
    if shutil.which("setpriv"):
        return (
            ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"],
            user.pw_uid,
            user.pw_gid,
        )
    return ["runuser", "-u", "nobody", "--"], user.pw_uid, user.pw_gid


@dataclass
class PostgresServer:
    """A running throwaway server: trust auth for role `mer`, no TCP, a unix socket in `root`."""

    bindir: Path
    root: Path
    version: str
    databases: list[str] = field(default_factory=list)

    def url(self, database: str) -> str:
        """SQLAlchemy URL of a database on this server (psycopg2, over the unix socket)."""
        return f"postgresql+psycopg2://mer@/{database}?host={self.root}"

    def create_database(self, hint: str) -> str:
        """A new empty database (named after `hint`); returns its URL."""
        import psycopg2  # the optional driver; the fixture has checked it is installed

        name = re.sub(r"[^a-z0-9]+", "_", hint.lower())[:40].strip("_") + f"_{len(self.databases)}"
        conn = psycopg2.connect(host=str(self.root), dbname="postgres", user="mer")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        self.databases.append(name)
        return self.url(name)

    def log_tail(self, n: int = 20) -> str:
        """The last lines of the server log (for failure messages)."""
        log = self.root / "server.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-n:]) if log.is_file() else ""


def _run(cmd: list[str], what: str, timeout: float = 120, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **env} if env else None)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-1500:]}")
    return proc.stdout


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """Start PostgreSQL (initdb + pg_ctl, as `nobody` when root) in a temporary folder; stop and delete it after."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found; .ci/run installs them: apt-get install postgresql"
        )
    try:
        import psycopg2  # noqa: F401 - the optional driver (the `postgres` extra)
    except ImportError:
        pytest.skip("psycopg2 not installed: pip install -e '.[postgres]'")
    prefix, uid, gid = unprivileged_prefix()
    root = Path(tempfile.mkdtemp(prefix="mer-pg-"))  # not under pytest's 0700 tmp folder: `nobody` must enter it
    os.chown(root, uid, gid)
    start = time.perf_counter()
    data = root / "data"
    _run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "mer", "--auth=trust", "-E", "UTF8", "--no-sync"],
         "initdb")  # fmt: skip
    options = f"-k {root} -c listen_addresses='' -c fsync=off -c full_page_writes=off -c max_connections=200"
    _run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60",
          "-o", options, "start"], "pg_ctl start")  # fmt: skip
    banner = _run([str(bindir / "postgres"), "--version"], "postgres --version")
    version = (re.findall(r"\)\s*(\d[\w.]*)", banner) or [banner.strip()])[0]
    server = PostgresServer(bindir, root, version)
    user = "nobody" if prefix else pwd.getpwuid(uid).pw_name
    announce(request.config, f"postgres: started PostgreSQL {version} on unix socket {root} (as {user}, "
             f"{bindir}) in {time.perf_counter() - start:.1f} s; {_load()}")  # fmt: skip
    try:
        yield server
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60, check=False)  # fmt: skip
        announce(request.config, f"postgres: stopped PostgreSQL {version} ({len(server.databases)} test databases)")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A fresh database on the session's PostgreSQL server, as a SQLAlchemy URL."""
    return postgres_server.create_database(request.node.name)


# ---------------------------------------------------------------- Slurm

SLURM_PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "sinfo", "srun")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SlurmCluster:
    """A one-node Slurm cluster on localhost; `env` has SLURM_CONF for the client commands."""

    root: Path
    conf: Path
    node: str
    cpus: int
    env: dict[str, str]
    jobs: list[str] = field(default_factory=list)

    def sbatch(self, script: Path, *args: str, options: tuple[str, ...] = (), cwd: Path, env: dict[str, str]) -> str:
        """Submit `script` (extra sbatch `options` before it, script `args` after); returns the job id."""
        out = subprocess.run(["sbatch", "--parsable", *options, str(script), *args], cwd=cwd, env={**env, **self.env},
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"sbatch {script.name} failed: {out.stderr.strip()}")
        job = out.stdout.strip().split(";")[0]
        self.jobs.append(job)
        return job

    def states(self, job: str) -> dict[str, str]:
        """Array task id (or '' for a plain job) → Slurm state of every task of `job` the controller knows."""
        out = subprocess.run(["scontrol", "-o", "show", "job", job], env={**os.environ, **self.env},
                             capture_output=True, text=True, timeout=30, check=False).stdout  # fmt: skip
        states = {}
        for line in out.splitlines():
            task = re.search(r"\bArrayTaskId=(\S+)", line)
            state = re.search(r"\bJobState=(\S+)", line)
            if state:
                states[task.group(1) if task else ""] = state.group(1)
        return states

    def wait(self, job: str, timeout: float) -> dict[str, str]:
        """Wait until every task of `job` has ended (bounded); returns their final states."""
        deadline = time.monotonic() + timeout
        ending = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED"}
        while True:
            states = self.states(job)
            if states and not any(s in ending or "-" in t for t, s in states.items()):  # "0-2" = tasks not split yet
                return states
            if time.monotonic() > deadline:
                subprocess.run(["scancel", job], env={**os.environ, **self.env}, timeout=30, check=False)
                raise TimeoutError(f"slurm job {job} not done after {timeout:.0f} s: {states}")
            time.sleep(1.0)

    def log_tail(self, n: int = 15) -> str:
        """The last lines of the controller's and the node daemon's logs."""
        parts = []
        for name in ("slurmctld.log", "slurmd.log"):
            path = self.root / name
            if path.is_file():
                parts.append(f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-n:]))
        return "\n".join(parts)


def slurm_conf(root: Path, node: str, cpus: int, ctld_port: int, slurmd_port: int) -> str:
    """A minimal slurm.conf for one node in a container: no cgroups, no accounting, CPUs as the only resource."""
    return f"""\
ClusterName=mer-test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=3600
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="session")
def slurm_cluster(request: pytest.FixtureRequest) -> Iterator[SlurmCluster]:
    """munged + slurmctld + slurmd for this host on 127.0.0.1 with a slurm.conf in a temporary folder."""
    missing = [p for p in SLURM_PROGRAMS if shutil.which(p) is None]
    if missing:
        pytest.skip(f"Slurm not installed ({', '.join(missing)} not found); .ci/run installs it: "
                    "apt-get install slurm-wlm munge")  # fmt: skip
    if os.geteuid() != 0:
        pytest.skip("a local Slurm needs root here (slurmd launches the jobs as their owner)")
    root = Path(tempfile.mkdtemp(prefix="mer-slurm-"))
    root.chmod(0o755)  # munge checks that its socket's folder can be entered by all
    for sub in ("state", "spool"):
        (root / sub).mkdir()
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    node = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    conf = root / "slurm.conf"
    conf.write_text(slurm_conf(root, node, cpus, _free_port(), _free_port()))
    env = {"SLURM_CONF": str(conf)}
    start = time.perf_counter()
    procs: list[subprocess.Popen] = []

    def daemon(name: str, *cmd: str) -> None:
        log = open(root / f"{name}.out", "wb")  # noqa: SIM115 - the daemon holds it
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}))

    cluster = SlurmCluster(root, conf, node, cpus, env)
    try:
        files = [f"--{k}-file={root}/munged.{k}" for k in ("log", "pid", "seed")]
        daemon("munged", "munged", "-F", "-f", f"--socket={root}/munge.socket", f"--key-file={key}", *files)
        _wait_for(lambda: (root / "munge.socket").exists(), 20, "munged socket", root / "munged.out")
        daemon("slurmctld", "slurmctld", "-D", "-i", "-f", str(conf))
        daemon("slurmd", "slurmd", "-D", "-f", str(conf), "-N", node)

        def idle() -> bool:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], env={**os.environ, **env}, capture_output=True,
                                 text=True, timeout=20, check=False).stdout  # fmt: skip
            return out.strip() == "idle"

        _wait_for(idle, 60, "the node to be idle", None, cluster)
        version = _run(["sinfo", "--version"], "sinfo --version", env=env).strip()
        announce(request.config, f"slurm: started {version} (munged, slurmctld, slurmd) on node {node} with {cpus} "
                 f"CPUs, 127.0.0.1, in {time.perf_counter() - start:.1f} s; {_load()}")  # fmt: skip
        yield cluster
    finally:
        for job in cluster.jobs:
            subprocess.run(["scancel", job], env={**os.environ, **env}, capture_output=True, timeout=30, check=False)
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if procs:
            announce(request.config, f"slurm: stopped the cluster ({len(cluster.jobs)} jobs submitted)")
        shutil.rmtree(root, ignore_errors=True)


def _wait_for(ok: Any, timeout: float, what: str, log: Path | None, cluster: SlurmCluster | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            detail = log.read_text(errors="replace")[-1500:] if log and log.is_file() else ""
            if cluster is not None:
                detail = cluster.log_tail()
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}\n{detail}")
        time.sleep(0.5)


# ---------------------------------------------------------------- W&B offline files

_BLOCK, _HEADER = 32768, 7  # the .wandb file: LevelDB-log blocks of records, each 4-byte CRC32 + length + type
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class WandbRun:
    """What an offline `.wandb` file holds about its run."""

    path: Path
    id: str
    name: str
    group: str
    job_type: str
    project: str
    config: dict[str, Any]
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    exit_code: int | None


def _items(items: Any) -> Iterator[tuple[str, Any]]:
    for item in items:
        key = ".".join(item.nested_key) if item.nested_key else item.key
        yield key, json.loads(item.value_json)


def read_wandb_records(path: Path) -> list[Any]:
    """Every record of a `.wandb` file, decoded with the wandb package's own protobuf (CRCs checked)."""
    from wandb.proto import wandb_internal_pb2  # here: importing wandb costs seconds, most tests never read a run

    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a .wandb file")
    records, pos, pending = [], _HEADER, b""
    while pos + _HEADER <= len(data):
        if _BLOCK - pos % _BLOCK < _HEADER:  # the block's tail is padding
            pos += _BLOCK - pos % _BLOCK
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        chunk = data[pos + _HEADER : pos + _HEADER + length]
        pos += _HEADER + length
        if kind == 0 and length == 0:
            continue
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != crc:
            raise ValueError(f"{path}: bad checksum at byte {pos}")
        pending = chunk if kind in (_FULL, _FIRST) else pending + chunk
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def read_wandb_run(path: Path) -> WandbRun:
    """Group, job type, config, summary and history of the run in an offline `.wandb` file."""
    run, config, summary, history, exit_code = None, {}, {}, [], None
    for record in read_wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            config.update(_items(run.config.update))
        elif kind == "config":
            config.update(_items(record.config.update))
        elif kind == "summary":
            summary.update(_items(record.summary.update))
            for item in record.summary.remove:
                summary.pop(".".join(item.nested_key) if item.nested_key else item.key, None)
        elif kind == "history":
            history.append(dict(_items(record.history.item)))
        elif kind == "exit":
            exit_code = record.exit.exit_code
    if run is None:
        raise ValueError(f"{path}: no run record")
    config.pop("_wandb", None)
    return WandbRun(path, run.run_id, run.display_name, run.run_group, run.job_type, run.project, config, summary,
                    history, exit_code)  # fmt: skip


def wandb_runs(folder: Path) -> list[WandbRun]:
    """Every offline run under `folder` (wandb/offline-run-*/run-*.wandb), by run name."""
    return sorted((read_wandb_run(p) for p in folder.rglob("offline-run-*/run-*.wandb")), key=lambda r: r.name)
