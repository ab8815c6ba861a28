"""Drill results: progress lines, the JSON file and the markdown summary table."""

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STARTED = time.monotonic()


def progress(message: str) -> None:
    elapsed = time.monotonic() - STARTED
    print(f"[{time.strftime('%H:%M:%S', time.gmtime())} +{elapsed:6.1f}s] {message}", flush=True)


@dataclass
class DrillResult:
    drill: str
    done: str
    expected: str
    observed: str = ""
    passed: bool = False
    figures: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(results: list[DrillResult]) -> str:
    lines = [
        "| drill | what was done | expected | observed | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    for result in results:
        verdict = "skipped" if result.skipped else "pass" if result.passed else "**FAIL**"
        observed = result.observed + (f" (error: {result.error})" if result.error else "")
        lines.append(
            f"| {_cell(result.drill)} | {_cell(result.done)} | {_cell(result.expected)} | "
            f"{_cell(observed)} | {verdict} |"
        )
    return "\n".join(lines)


def ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.0f} ms"
