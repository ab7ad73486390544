"""Real git: clone, dated branch, commit, push, and the one-line errors an operator needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.dependencies.git_repo import check_remote, commit_all, git, prepare_workdir, push_branch, start_branch
from tasks.retry import PermanentError


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "backend").mkdir()
    (seed / "backend" / "package.json").write_text('{"name": "backend", "dependencies": {"ms": "2.0.0"}}\n')
    git("init", "--quiet", "-b", "main", cwd=seed)
    commit_all(seed, "initial")
    bare = tmp_path / "app.git"
    git("clone", "--quiet", "--bare", str(seed), str(bare))
    return bare


def test_branch_commit_push_and_a_second_run_replaces_the_branch(remote, tmp_path):
    work = tmp_path / "work"
    base = prepare_workdir(str(remote), "main", work)
    assert base == check_remote(str(remote), "main")
    start_branch(work, "dependency-updates-20261129", "main")
    (work / "backend" / "package.json").write_text('{"name": "backend", "dependencies": {"ms": "2.1.3"}}\n')
    first = commit_all(work, "chore: update dependencies 20261129")
    assert first and push_branch(work, "dependency-updates-20261129") == first
    assert commit_all(work, "nothing") is None  # nothing changed: no empty commit
    # the next run starts from a fresh base and replaces the branch it owns
    prepare_workdir(str(remote), "main", work)
    start_branch(work, "dependency-updates-20261129", "main")
    (work / "backend" / "package.json").write_text('{"name": "backend", "dependencies": {"ms": "2.1.2"}}\n')
    second = commit_all(work, "chore: update dependencies 20261129")
    push_branch(work, "dependency-updates-20261129", expected=first)
    assert git("rev-parse", "dependency-updates-20261129", cwd=remote) == second
    assert git("log", "--format=%s", "-1", "dependency-updates-20261129", cwd=remote) == "chore: update dependencies 20261129"


def test_a_rejected_push_is_a_clear_failure(remote, tmp_path):
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'GH006: Protected branch update failed' >&2\nexit 1\n")
    hook.chmod(0o755)
    work = tmp_path / "work"
    prepare_workdir(str(remote), "main", work)
    start_branch(work, "dependency-updates-20261129", "main")
    (work / "x").write_text("x")
    commit_all(work, "change")
    with pytest.raises(PermanentError, match="push of dependency-updates-20261129 rejected: .*Protected branch"):
        push_branch(work, "dependency-updates-20261129")
    assert git("branch", "--list", "dependency-updates-*", cwd=remote) == ""


def test_a_branch_changed_on_the_remote_since_the_run_read_it_is_not_overwritten(remote, tmp_path):
    work = tmp_path / "work"
    prepare_workdir(str(remote), "main", work)
    start_branch(work, "dependency-updates-20261129", "main")
    (work / "x").write_text("ours")
    seen = commit_all(work, "the run's first push")
    push_branch(work, "dependency-updates-20261129")
    other = tmp_path / "other"  # someone pushes a fix to the pull request's branch meanwhile
    git("clone", "--quiet", "--branch", "dependency-updates-20261129", str(remote), str(other))
    (other / "x").write_text("a person's fix")
    theirs = commit_all(other, "a person's fix")
    git("push", "--quiet", "origin", "dependency-updates-20261129", cwd=other)
    start_branch(work, "dependency-updates-20261129", "main")
    (work / "x").write_text("ours again")
    commit_all(work, "the run's second push")
    with pytest.raises(PermanentError, match="the remote branch changed since this run read it"):
        push_branch(work, "dependency-updates-20261129", expected=seen)
    assert git("rev-parse", "dependency-updates-20261129", cwd=remote) == theirs  # the person's commit is kept


@pytest.mark.parametrize("url, branch, expected", [
    ("/nonexistent/app.git", "main", "expected a git URL or path that exists"),
    (None, "develop", "expected a branch named 'develop'"),
])
def test_missing_repository_or_branch_is_one_line_before_cloning(remote, tmp_path, url, branch, expected):
    with pytest.raises(PermanentError, match=expected) as failed:
        check_remote(url or str(remote), branch)
    assert len(str(failed.value).strip().splitlines()) == 1
    assert not (tmp_path / "work").exists()


def test_a_work_copy_left_dirty_or_damaged_never_blocks_the_next_run(remote, tmp_path):
    work = tmp_path / "work"
    prepare_workdir(str(remote), "main", work)
    start_branch(work, "dependency-updates-20261129", "main")  # a try that failed, or a dry run, left this behind:
    (work / "backend" / "package.json").write_text('{"name": "backend", "dependencies": {"ms": "2.1.3"}}\n')
    (work / "backend" / "package-lock.json").write_text("{}\n")
    git("add", "backend/package-lock.json", cwd=work)
    other = tmp_path / "other"  # meanwhile the base branch changes the same files
    git("clone", "--quiet", str(remote), str(other))
    (other / "backend" / "package.json").write_text('{"name": "backend", "dependencies": {"ms": "2.0.1"}}\n')
    (other / "backend" / "package-lock.json").write_text('{"lockfileVersion": 3}\n')
    pushed = commit_all(other, "base moves on")
    git("push", "--quiet", "origin", "main", cwd=other)

    assert prepare_workdir(str(remote), "main", work) == pushed  # the next run starts from the new base, clean
    assert git("status", "--porcelain", cwd=work) == ""
    assert (work / "backend" / "package-lock.json").read_text() == '{"lockfileVersion": 3}\n'

    (work / ".git" / "HEAD").write_text("garbage\n")  # a crash mid-write left the copy unreadable: cloned afresh
    assert prepare_workdir(str(remote), "main", work) == pushed
    assert git("status", "--porcelain", cwd=work) == ""
