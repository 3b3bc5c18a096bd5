"""The README's shell examples, as a test runs them.

A fenced ```sh block preceded by the line `<!-- test: run -->` is run, block after block,
in the order of the README, by one bash process against a live server. Each command (lines
joined where a line ends with `\\` or a quote is still open) promises a status: the first
three-digit number of a comment on it or on the comment lines right after it
(`# 201 Created`); with none, any 2xx. Every `curl` of the command must answer that status.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

MARK = "<!-- test: run -->"
_STATUS = re.compile(r"#\s*(\d{3})\b")
_HEREDOC = re.compile(r"<<-?\s*'?([A-Za-z_]+)'?\s*$")


@dataclass
class Command:
    text: str
    line: int  # 1-based line in the README
    status: int | None  # None: any 2xx

    @property
    def curls(self) -> int:
        return len(re.findall(r"(?:^|[\s;($])curl\s", self.text))


def blocks(readme: str) -> list[tuple[int, list[str]]]:
    """The marked ```sh blocks: (line of the first command line, its lines)."""
    lines = readme.splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.strip() == MARK:
            if not lines[i + 1].startswith("```sh"):
                raise ValueError(f"README line {i + 1}: {MARK} must stand right before a ```sh block")
            end = lines.index("```", i + 2)
            found.append((i + 3, lines[i + 2:end]))
    return found


def _complete(text: str) -> bool:
    if text.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(text, comments=True)
    except ValueError:  # a quote still open
        return False
    return True


def commands(readme: str) -> list[Command]:
    out: list[Command] = []
    for first_line, lines in blocks(readme):
        pending: list[str] = []
        start = 0
        heredoc: str | None = None
        for offset, line in enumerate(lines):
            if heredoc is not None:  # inside a here-document: taken whole, up to its end word
                pending.append(line)
                if line.strip() == heredoc:
                    out.append(Command("\n".join(pending), start, None))
                    pending, heredoc = [], None
                continue
            if not pending and (match := _HEREDOC.search(line)):
                start, pending, heredoc = first_line + offset, [line], match.group(1)
                continue
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                match = _STATUS.match(line.strip())
                if match and out and out[-1].status is None and offset > 0:
                    out[-1].status = int(match.group(1))  # a comment line promising the last command's status
                continue
            if not pending:
                start = first_line + offset
            pending.append(line)
            text = "\n".join(pending)
            if _complete(text):
                comment = _STATUS.search(text.splitlines()[0]) or _STATUS.search(text.splitlines()[-1])
                out.append(Command(text, start, int(comment.group(1)) if comment else None))
                pending = []
        if pending:
            raise ValueError(f"README line {start}: a command does not end")
    return out


def script(commands: list[Command], base: str, status_file: Path) -> str:
    """One bash script: the README's variables, a `curl` that notes each status, the commands."""
    parts = [
        "set -u",
        f"B={base}",
        "J='Content-Type: application/fhir+json'",
        # Each answer's status goes to the status file (write-out to stderr); the body to stdout,
        # so `ID=$(curl ...)` still works.
        f"curl() {{ command curl -sS --max-time 60 -w '%{{stderr}}%{{http_code}}\\n' \"$@\" 2>>{status_file}; }}",
    ]
    for index, command in enumerate(commands):
        parts.append(f"echo '@@ {index}' >> {status_file}")
        parts.append(command.text)
    return "\n".join(parts) + "\n"


def statuses(status_file: Path) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    current = -1
    for line in status_file.read_text().splitlines():
        if line.startswith("@@ "):
            current = int(line[3:])
            out[current] = []
        elif line.strip():
            out[current].append(line.strip())
    return out


def readme_text() -> str:
    return (Path(__file__).resolve().parents[2] / "README.md").read_text()
