"""Backup benchmarks on the sandbox database seeded to about 2 GB, side by side with their baselines, in one run:

- backup-database into a local S3-compatible endpoint (moto server) vs `pg_dump -Fc -Z0 DB > /dev/null` (the floor)
  and the guide's `pg_dump DB > backup.sql && gzip backup.sql`;
- peak memory of the backup process, and again for a database 4x larger (--scale4);
- the full restore drill (verify-backup mode=full) vs a bare `zstd -dc archive | pg_restore` into a fresh
  database plus the count checks.

    uv run python bench/backup.py [--requests 10000000] [--repeat 3] [--scale4] [--bounds] [--overhead-only]
                                  [--database NAME] [--prefect-sqlite]

--bounds adds two reference rows: a hand-built pipeline into the same store with nothing but dump, compression and
upload, and the same with the snapshot's content-hash query alongside. They show what the machine allows.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import bench_server, ensure_prefect, free_port, header, isolated_env, median, row, tool  # noqa: E402

PG = ""  # the benchmarks' own server, set in main()

CHILD = r'''
import json, os, resource, sys, time
from flows.backup_database import backup_database
t0 = time.perf_counter()
report = backup_database(verify=False)
print(json.dumps({"seconds": time.perf_counter() - t0, "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "backup_id": report.figures["backup_id"], "raw_mib": report.figures["raw_mib"],
                  "stored_mib": report.figures["stored_mib"],
                  "steps": {k: v for k, v in report.figures.items() if k.startswith("step_")}}))
'''


def timed(cmd: str, env: dict | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def psql(db: str, sql: str) -> str:
    return subprocess.run([tool("psql"), f"{PG}/{db}", "-tAc", sql], check=True, capture_output=True, text=True).stdout.strip()


def ensure_seeded(db: str, requests: int) -> None:
    exists = psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{db}'")
    if exists and int(psql(db, "SELECT count(*) FROM requests") or 0) == requests:
        return
    print(f"seeding {db} with {requests:,} requests ...", file=sys.stderr)
    env = {**os.environ, "OPS_SANDBOX_DATABASE": db}
    subprocess.run([sys.executable, "-m", "playground_ops.cli", "sandbox", "seed", "--users", "20000",
                    "--requests", str(requests), "--days", "60"], check=True, env=env)


def run_backup(env: dict, show_steps: bool = False) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if show_steps:  # where the run's time went: its steps inside the dump task, the rest is the run's bookkeeping
        print(f"  backup-database {result['seconds']:.3f} s; steps {result['steps']}", file=sys.stderr)
    return result


def bare_pipeline(db: str, endpoint: str, with_hash: bool) -> float:
    """The least any backup into this store can do: pg_dump -Fc -Z0 | zstd -1 | multipart upload, with no hashing,
    no archive check and no Prefect; optionally with the snapshot's content-hash query running alongside."""
    import threading

    from tasks.database import postgres
    from tasks.backup.store import MiB, open_backup_store

    store = open_backup_store("s3://bench-backups/bounds", endpoint)
    query = None
    if with_hash:
        def content_hashes() -> None:  # as the backup takes them: in an exported snapshot
            snapshot = postgres.Snapshot(f"{PG}/{db}")
            try:
                snapshot.table_figures([r.name for r in snapshot.relations() if r.kind == "r"])
            finally:
                snapshot.close()
        query = threading.Thread(target=content_hashes)
    t0 = time.perf_counter()
    if query:
        query.start()
    pipe = subprocess.Popen(f"set -o pipefail; {tool('pg_dump')} -Fc -Z0 -d {PG}/{db} | zstd -1 -q", shell=True,
                            executable="/bin/bash", stdout=subprocess.PIPE)
    store.upload_stream("bare.pgdump.zst", iter(lambda: pipe.stdout.read(MiB), b""), part_size=16 * MiB)
    if pipe.wait() != 0:
        raise RuntimeError("the bare pipeline failed")
    if query:
        query.join()
    return time.perf_counter() - t0


def paired(n: int, baseline, measured) -> tuple[list, list]:
    """Run baseline and measured back to back, n times, so both see the same moment of a noisy machine."""
    baselines, results = [], []
    for i in range(n):
        baselines.append(baseline())
        results.append(measured())
        seconds = results[-1]["seconds"] if isinstance(results[-1], dict) else results[-1]
        print(f"pair {i + 1}: baseline {baselines[-1]:.3f} s, measured {seconds:.3f} s", file=sys.stderr)
    return baselines, results


def paired_row(name: str, measured: list[float], baselines: list[float], baseline_name: str) -> str:
    """The medians' ratio, with each pair's own ratio alongside to show the spread."""
    each = ", ".join(f"{m / b:.2f}" for m, b in zip(measured, baselines))
    return row(f"{name} (median of {len(measured)}; each pair: {each})", median(measured), median(baselines), "s",
               baseline_name)


def drill_row(env: dict, endpoint: str, backup_id: str, repeat: int) -> str:
    """The full restore drill (verify-backup mode=full) against a bare restore of the same archive into the same
    server (its private drill cluster) plus the smoke counts, pairs back to back."""
    import boto3

    from playground_ops.settings import load_settings

    drill_server = load_settings().drill_cluster().ensure().rsplit("/", 1)[0]

    def drill() -> float:
        out = subprocess.run([sys.executable, "-c", "import time; from flows.verify_backup import verify_backup; "
                              f"t=time.perf_counter(); r=verify_backup(backup_id={backup_id!r}, mode='full', "
                              "apply_retention=False); print(time.perf_counter()-t, r.status.value)"], env=env,
                             cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        seconds, status = out.stdout.strip().splitlines()[-1].split()
        print(f"  drill: {status}", file=sys.stderr)
        return float(seconds)

    with tempfile.TemporaryDirectory() as tmp:
        key = f"playground/bench/{backup_id}/archive.pgdump.zst"
        boto3.client("s3", endpoint_url=endpoint).download_file("bench-backups", key, f"{tmp}/a.zst")
        drop = f"{tool('psql')} {drill_server}/postgres -tAc 'DROP DATABASE IF EXISTS bench_bare_restore'"

        def bare() -> float:
            timed(f"{drop} && {tool('psql')} {drill_server}/postgres -tAc 'CREATE DATABASE bench_bare_restore'")
            seconds = timed(f"zstd -dc {tmp}/a.zst | {tool('pg_restore')} --no-owner -d {drill_server}/bench_bare_restore"
                            f" && {tool('psql')} {drill_server}/bench_bare_restore -tAc 'SELECT count(*) FROM users' && "
                            f"{tool('psql')} {drill_server}/bench_bare_restore -tAc 'SELECT count(*) FROM requests'")
            timed(drop)
            return seconds

        bares, drills = paired(repeat, bare, drill)
    return paired_row("verify-backup full drill vs zstd -dc | pg_restore + counts, same server", drills, bares, "bare")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=10_000_000)
    parser.add_argument("--scale4", action="store_true", help="also measure memory on a database 4x larger")
    parser.add_argument("--repeat", type=int, default=3, help="pairs of backup and floor runs (medians are reported)")
    parser.add_argument("--bounds", action="store_true",
                        help="also time the least any backup into this store can do, against the same floor, and "
                             "backup-database against that same-work pipeline (its own overhead)")
    parser.add_argument("--no-drill", action="store_true", help="skip the restore drill rows")
    parser.add_argument("--prefect-sqlite", action="store_true",
                        help="run the benchmark's Prefect server on SQLite (the demo's) rather than PostgreSQL")
    parser.add_argument("--database", default="playground_bench_2g",
                        help="the bench database to seed with --requests and back up (a small one shows fixed costs)")
    parser.add_argument("--drill-only", action="store_true",
                        help="only the full restore drill against a bare zstd -dc | pg_restore, --repeat pairs")
    parser.add_argument("--overhead-only", action="store_true",
                        help="only backup-database against the bare same-work pipeline, --repeat pairs")
    args = parser.parse_args()
    from tasks.backup.policy import PLAIN_DATABASE, PLAIN_DATABASE_FORM

    if not re.fullmatch(PLAIN_DATABASE, args.database):
        parser.error(f"--database: expected {PLAIN_DATABASE_FORM} (got {args.database!r})")
    global PG
    home = isolated_env("backup")
    PG = bench_server()
    # Prefect's server on PostgreSQL, as Prefect advises for production: on SQLite, writes that meet (the runner's
    # events beside a run's own calls) are answered 503 "database is locked" and the client retries seconds later
    server = ensure_prefect(home, on_postgres=PG, sqlite=args.prefect_sqlite)
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port := free_port())],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
                       "OPS_S3_ENDPOINT_URL": endpoint, "OPS_BACKUP_URL": "s3://bench-backups/playground"})
    time.sleep(2)
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench-backups")
    from deployments.setup import setup
    from playground_ops.settings import load_settings

    setup(load_settings())
    lines = [header()]
    try:
        for db, requests, label in [(args.database, args.requests, "2 GB" if args.database == "playground_bench_2g"
                                     else args.database)] + (
                [("playground_bench_8g", args.requests * 4, "8 GB (4x)")] if args.scale4 else []):
            ensure_seeded(db, requests)
            size = psql(db, "SELECT pg_size_pretty(pg_database_size(current_database()))")
            env = {**os.environ, "TARGET_NAME": "bench", "HEALTH_URL": "http://127.0.0.1:1/health",
                   "DATABASE_URL": f"{PG}/{db}", "REDIS_URL": "redis://127.0.0.1:6379/12"}
            if args.drill_only:
                lines.append(drill_row(env, endpoint, run_backup(env)["backup_id"], args.repeat))
                continue
            if args.overhead_only:
                bare_same, ours_again = paired(args.repeat, lambda: bare_pipeline(db, endpoint, True),
                                               lambda: run_backup(env, show_steps=True)["seconds"])
                lines.append(paired_row(f"backup-database {label} vs the bare same-work pipeline (dump | zstd | "
                                        "upload + content-hash query)", ours_again, bare_same, "bare same-work"))
                continue
            floors, runs = paired(args.repeat, lambda: timed(f"{tool('pg_dump')} -Fc -Z0 -d {PG}/{db} > /dev/null"),
                                  lambda: run_backup(env))
            ours = runs[-1]
            lines.append(paired_row(f"backup-database {label} ({size}) vs pg_dump -Fc -Z0 > /dev/null",
                                    [r["seconds"] for r in runs], floors, "floor"))
            peak = max(r["maxrss_mib"] for r in runs)
            lines.append(f"| peak memory of the backup process, {label} | {peak:.0f} MiB | limit 300 MiB | "
                         f"{peak / 300:.2f}x |")
            if db != "playground_bench_2g":
                continue
            with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
                guide = timed(f"{tool('pg_dump')} -d {PG}/{db} > {tmp}/backup.sql && gzip {tmp}/backup.sql")
            backup_s = median([r["seconds"] for r in runs])
            lines.append(row("guide's pg_dump > backup.sql && gzip vs backup-database (median)", guide, backup_s, "s",
                             "backup-database"))
            if args.bounds:
                for with_hash, name in [(False, "bare pg_dump | zstd | upload"),
                                        (True, "bare pg_dump | zstd | upload + content-hash query")]:
                    bare_floors, bare_runs = paired(args.repeat, lambda: timed(f"{tool('pg_dump')} -Fc -Z0 -d {PG}/{db} > /dev/null"),
                                                    lambda: bare_pipeline(db, endpoint, with_hash))
                    lines.append(paired_row(f"{name} vs pg_dump -Fc -Z0 > /dev/null", bare_runs, bare_floors, "floor"))
                # the backup's own overhead: against the bare pipeline doing the same work, pairs back to back
                bare_same, ours_again = paired(args.repeat, lambda: bare_pipeline(db, endpoint, True),
                                               lambda: run_backup(env)["seconds"])
                lines.append(paired_row("backup-database vs the bare same-work pipeline (dump | zstd | upload + "
                                        "content-hash query)", ours_again, bare_same, "bare same-work"))
            if args.no_drill:
                continue
            lines.append(drill_row(env, endpoint, ours["backup_id"], args.repeat))
    finally:
        moto.terminate()
        if server is not None:
            server.terminate()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
