"""The README runs as written: its marked shell examples, in order, against a fresh `make run`.

`make run` itself is started (fresh SQLite file, authentication off as it sets it, a port of
TEST_SERVER_PORTS), so the test also proves that it prints the URLs to open.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.live import ROOT, answers, free_port, request, stop, wait_until
from tests.readme.examples import Command, commands, readme_text, script, statuses


def test_the_marked_examples_are_found_with_their_promised_statuses():
    found = commands(readme_text())
    assert len(found) >= 40
    by_text = {c.text.splitlines()[0]: c for c in found}
    assert by_text["curl -i -X DELETE $B/Patient/pat-1     # 204; a later read answers 410 Gone"].status == 204
    create = next(c for c in found if c.text.startswith("curl -i -X POST $B/Patient -H"))
    assert create.status == 201  # promised on the comment line after it
    assert all(c.curls >= 1 or "=" in c.text.split()[0] or c.text.startswith(("cat", "echo")) for c in found)


def test_a_command_is_joined_across_continuations_and_open_quotes():
    text = "<!-- test: run -->\n```sh\ncurl -X POST $B -d '{\n  \"a\": 1}'   # 400 bad\ncurl $B \\\n  -i\n# 404\n```\n"
    first, second = commands(text)
    assert first.text.endswith("# 400 bad") and first.status == 400
    assert second.text == "curl $B \\\n  -i" and second.status == 404


@pytest.fixture
def make_run(tmp_path: Path):
    port = free_port("TEST_SERVER_PORTS", "18200-18299")
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("FHIR_", "DJANGO_", "DATABASE_", "GUNICORN_", "PYTEST", "MAKE"))}
    environment.update({"HOST": "127.0.0.1", "PORT": str(port), "SQLITE_PATH": str(tmp_path / "readme.sqlite3")})
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=environment, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(process, log, lambda: answers(port, "/healthz"), "make run", timeout=180, every=0.5)
        yield port, log, tmp_path
    finally:
        stop(process)


def _expected(command: Command, got: str) -> bool:
    return int(got) == command.status if command.status else 200 <= int(got) < 300


@pytest.mark.slow
def test_the_readme_examples_run_in_order_on_a_fresh_make_run(make_run):
    port, log, workdir = make_run
    printed = log.read_text()
    for url in ("/", "/fhir", "/fhir/metadata", "/fhir/docs", "/admin/"):
        assert f"http://127.0.0.1:{port}{url}\n" in printed, url
    found = commands(readme_text())
    status_file = workdir / "statuses"
    status_file.write_text("")
    result = subprocess.run(["bash", "-c", script(found, f"http://127.0.0.1:{port}/fhir", status_file)],
                            cwd=workdir, capture_output=True, text=True, timeout=600)
    got = statuses(status_file)
    failures = []
    for index, command in enumerate(found):
        answers = got.get(index, [])
        if len(answers) != command.curls or not all(a.isdigit() and _expected(command, a) for a in answers):
            failures.append(f"README line {command.line}: promised {command.status or '2xx'}, got {answers}\n"
                            f"  {command.text}")
    assert not failures, "\n".join(failures) + f"\n--- output ---\n{result.stdout[-3000:]}{result.stderr[-2000:]}"
