"""Process facts from /proc: children, command lines, resident memory. Linux only."""

import os
import signal
import time
from pathlib import Path

PROC = Path("/proc")


def parent_of(pid: int) -> int | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ")".
    return int(stat.rsplit(")", 1)[1].split()[1])


def is_running(pid: int) -> bool:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children(pid: int) -> list[int]:
    found = []
    for entry in PROC.iterdir():
        if (
            entry.name.isdigit()
            and parent_of(int(entry.name)) == pid
            and is_running(int(entry.name))
        ):
            found.append(int(entry.name))
    return sorted(found)


def command_line(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def memory_kib(pid: int) -> dict[str, int] | None:
    """VmRSS and its parts (RssAnon: private, RssFile, RssShmem: shared memory) in KiB."""
    wanted = {"VmRSS:", "RssAnon:", "RssFile:", "RssShmem:"}
    try:
        lines = (PROC / str(pid) / "status").read_text().splitlines()
    except OSError:
        return None
    found = {
        line.split()[0].rstrip(":"): int(line.split()[1])
        for line in lines
        if line.split() and line.split()[0] in wanted
    }
    return found if "VmRSS" in found else None


def cpu_ticks(pid: int) -> int | None:
    """User + system CPU time of a process, in clock ticks."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def machine_busy_ticks() -> int:
    """CPU ticks the whole machine spent busy since boot (all but idle and iowait)."""
    values = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values[:8]) - idle


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(pid):
            return True
        time.sleep(0.1)
    return not is_running(pid)


def terminate(pid: int, timeout: float = 10.0) -> None:
    """TERM, then KILL after `timeout` seconds: for processes this runner started itself."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not wait_gone(pid, timeout):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_gone(pid, 5.0)
