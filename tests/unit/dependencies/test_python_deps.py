"""What uv prints is read whole: a long listing is never cut before it is parsed, and a listing that is not one is a
loud error, never "nothing is outdated"."""

import json
import sys
from pathlib import Path

import pytest

from tasks.dependencies.policy import parse_pip_outdated
from tasks.dependencies.python_deps import _run


def test_a_listing_of_seventy_packages_is_parsed_whole():
    listing = [{"name": f"package-{i:02d}", "version": "1.0.0", "latest_version": "1.0.1"} for i in range(70)]
    code = f"print({json.dumps(json.dumps(listing))})"
    result = _run([sys.executable, "-c", code], Path.cwd(), timeout=60)
    assert len(result.stdout) > 4000 and len(result.output) <= 4000  # the report's copy is cut, the parser's is not
    found = parse_pip_outdated(result.stdout, "backend", {f"package-{i:02d}": "==1.0.0" for i in range(70)})
    assert len(found) == 70 and found[-1].package == "package-69" and found[-1].kind == "patch"


@pytest.mark.parametrize("text", ["", "warning: something\n", '{"error": "no"}', "[{broken"])
def test_output_that_is_not_a_listing_is_an_error_naming_the_project_never_an_empty_list(text):
    with pytest.raises(ValueError, match=r"uv pip list --outdated in backend: expected a JSON list of packages"):
        parse_pip_outdated(text, "backend", {"six": "==1.15.0"})
