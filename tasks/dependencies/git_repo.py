"""Git, driven for real: a work directory the run owns, a dated branch, one commit, a push."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from playground_ops.redact import redact
from tasks.retry import PermanentError, TransientError

TRANSIENT = ("Could not resolve host", "Connection timed out", "Connection reset", "early EOF",
             "The remote end hung up unexpectedly", "Operation timed out")


def git(*args: str, cwd: Path | None = None, timeout: float = 300) -> str:
    """Run git; a failure raises with git's own (redacted) words, transient ones as TransientError."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        words = redact((result.stderr or result.stdout).strip())[-1500:]
        error = TransientError if any(t in words for t in TRANSIENT) else PermanentError
        raise error(f"git {args[0]} failed: {words}")
    return result.stdout.strip()


def git_bytes(*args: str, cwd: Path | None = None, timeout: float = 300) -> bytes:
    """Run git for its output as bytes (a file's exact content, as `git show <commit>:<path>` prints it)."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, timeout=timeout)
    if result.returncode != 0:
        raise PermanentError(f"git {args[0]} failed: {redact(result.stderr.decode(errors='replace').strip())[-1500:]}")
    return result.stdout


def check_remote(url: str, branch: str) -> str:
    """The base branch's head commit on the remote; a one-line error for a repository or branch that does not exist."""
    try:
        out = git("ls-remote", "--heads", url, branch, timeout=60)
    except PermanentError as exc:
        reason = str(exc).split("failed: ", 1)[-1].splitlines()[0]
        raise PermanentError(f"repository {redact(url)}: expected a git URL or path that exists ({reason})") from None
    if not out:
        raise PermanentError(f"repository {redact(url)}: expected a branch named {branch!r}")
    return out.split()[0]


def prepare_workdir(url: str, base: str, workdir: Path) -> str:
    """Clone into (or fetch and reset) a work directory only this runbook uses; returns the base commit. Whatever a
    failed try, a dry run or a crash left in it is thrown away; a copy git cannot read any more is cloned afresh."""
    try:
        return _fresh_base(url, base, workdir)
    except PermanentError:
        if not workdir.exists():
            raise
        shutil.rmtree(workdir)  # the runbook's own copy, damaged: start over (a bad URL or branch fails again)
        return _fresh_base(url, base, workdir)


def _fresh_base(url: str, base: str, workdir: Path) -> str:
    if (workdir / ".git").is_dir() and git("remote", "get-url", "origin", cwd=workdir) != url:
        shutil.rmtree(workdir)  # the runbook's own copy, of another repository: start over
    if (workdir / ".git").is_dir():
        git("fetch", "--prune", "--force", "origin", "+refs/heads/*:refs/remotes/origin/*", cwd=workdir)
    else:
        workdir.parent.mkdir(parents=True, exist_ok=True)
        git("clone", "--quiet", url, str(workdir))
    git("checkout", "--quiet", "--force", "-B", base, f"origin/{base}", cwd=workdir)  # local changes: discarded
    git("reset", "--quiet", "--hard", f"origin/{base}", cwd=workdir)
    git("clean", "-fdxq", "-e", "node_modules", cwd=workdir)  # keep installed modules: npm reconciles them
    return git("rev-parse", "HEAD", cwd=workdir)


def start_branch(workdir: Path, branch: str, base: str) -> None:
    """The dated branch, started afresh from the base (a rerun the same day rebuilds it)."""
    git("checkout", "--quiet", "--force", "-B", branch, f"origin/{base}", cwd=workdir)
    git("clean", "-fdxq", "-e", "node_modules", cwd=workdir)  # what an earlier try wrote (lock files) goes too


def commit_all(workdir: Path, message: str, author: str = "playground-ops <ops@playground.invalid>",
               paths: list[str] | None = None) -> str | None:
    """Commit every change (or only those under paths); None when there is nothing to commit."""
    git("add", "--all", "--", *(paths or ["."]), cwd=workdir)
    if not git("diff", "--cached", "--name-only", cwd=workdir):
        return None
    name, _, email = author.partition(" <")
    git("-c", f"user.name={name}", "-c", f"user.email={email.rstrip('>')}", "commit", "--quiet", "-m", message,
        cwd=workdir)
    return git("rev-parse", "HEAD", cwd=workdir)


def push_branch(workdir: Path, branch: str, expected: str | None = None) -> str:
    """Push the branch, replacing an earlier run's version of it only if the remote still has what this run saw
    (expected: the remote head seen when the run started; None: the branch must not exist yet)."""
    lease = f"--force-with-lease={branch}:{expected or ''}"
    try:
        git("push", "--quiet", lease, "origin", f"{branch}:{branch}", cwd=workdir)
    except PermanentError as exc:
        words = str(exc)
        why = ("the remote branch changed since this run read it (stale info)" if "stale info" in words
               else "the remote refused it" if "rejected" in words or "declined" in words else "")
        raise PermanentError(f"push of {branch} rejected: {why + '; ' if why else ''}{words.split('failed: ', 1)[-1]}"
                             " (nothing was pushed; the branch on the remote is as it was)") from None
    return git("rev-parse", "HEAD", cwd=workdir)


def adds_nothing(workdir: Path, base: str, branch: str) -> bool:
    """Whether merging branch into base would change nothing: base already has every change of branch. A merge with
    conflicts does change something (a person must resolve it)."""
    try:
        merged = git("merge-tree", "--write-tree", base, branch, cwd=workdir).splitlines()[0]
    except PermanentError:
        return False
    return merged == git("rev-parse", f"{base}^{{tree}}", cwd=workdir)
