"""README's curl walk, run as written against a real server: its output is the one shown.

The walk is the first `sh` block under "Try it with curl"; the expected output the `text`
block after it (timestamps differ from run to run, so they are compared as placeholders).
A second run answers what the README says it answers: 409 for the registration, 412 for the
conditional PATCH, the rest the same.
"""

import asyncio
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.server import PROJECT_ROOT, serving

README = PROJECT_ROOT / "README.md"
SECTION = "## Try it with curl"
TIMESTAMP = re.compile(r'"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z"')
WALK_SECONDS = 60


def block_after(text: str, start: int, language: str) -> tuple[str, int]:
    """The first fenced block of `language` after `start`, and where it ends."""
    match = re.compile(rf"```{language}\n(.*?)```", re.DOTALL).search(text, start)
    assert match is not None, f"no ```{language} block after {SECTION!r} in README.md"
    return match.group(1), match.end()


def walk_and_output() -> tuple[str, list[str]]:
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    script, end = block_after(text, start, "sh")
    output, _ = block_after(text, end, "text")
    return script, output.splitlines()


def normalised(lines: list[str]) -> list[str]:
    return [TIMESTAMP.sub('"<timestamp>"', line) for line in lines]


def run_walk(script: str, base_url: str) -> list[str]:
    assert "BASE=http://127.0.0.1:8000\n" in script
    result = subprocess.run(
        ["bash", "-c", "set -eu\n" + script.replace("http://127.0.0.1:8000", base_url, 1)],
        capture_output=True,
        text=True,
        timeout=WALK_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.fixture(scope="module")
def curl() -> str:
    found = shutil.which("curl")
    assert found, "curl is needed to run README's walk (Debian package curl)"
    return found


@pytest.mark.usefixtures("curl")
async def test_the_curl_walk_prints_what_the_readme_shows(
    scratch_database_url: str, tmp_path: Path
) -> None:
    script, shown = walk_and_output()
    async with serving(scratch_database_url, tmp_path, workers=1) as server:
        first = await asyncio.to_thread(run_walk, script, server.base_url)
        second = await asyncio.to_thread(run_walk, script, server.base_url)

    assert normalised(first) == normalised(shown)
    # "Run it a second time ... step 1 answers 409, the PATCH in step 4 answers 412, and
    # step 5 answers 409 three times before creating another task."
    again = normalised(second)
    assert again[0] == '{"detail":"Username is already taken"}'
    assert again[1] == normalised(shown)[1]
    assert '"id":3,' in again[2]  # a second task in alice's inbox, at its first version
    assert '"version":1,' in again[2]
    assert again[3] == (
        '{"detail":"The task has changed since you read it (If-Match does not match)"}'
    )
    assert again[4:7] == [
        '{"detail":"Username is already taken"}',
        '{"detail":"You already own a project with this name"}',
        '{"detail":"This user is already a member of the project"}',
    ]
    assert '"id":4,' in again[7]
    assert '"project_id":3,"assignee_id":2}' in again[7]
    assert again[8:] == normalised(shown)[8:]
