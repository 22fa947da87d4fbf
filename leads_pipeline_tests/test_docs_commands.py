"""Every `leads-pipeline …` command in the README and docs/*.md runs as written on the demo's warehouse.

A reader copies commands from the docs after `make demo`; an example that names a distributor the demo does not
create, an option that does not exist or a lead id from nowhere fails for them, so each one is run here, as written.

What counts as a command (fenced code blocks only; the info string's first word is the language):

- ```` ```console ````: every line starting with ``$ `` (a line ending in ``\\`` continues on the next). The lines
  after it are what it prints, and it must print them; ``…`` in them stands for anything (ids, times, counts that
  vary). Output that is JSON is compared as JSON, so the doc may space and wrap it for reading.
- ```` ```bash ```` / ```` ```sh ```` / ```` ```shell ````: every line that is not empty or a comment.
- Commands that run ``leads-pipeline`` are run. Each runs through bash, so pipes, ``$(…)``, quotes and ``export``
  work as written. The docs whose examples talk to the HTTP service (``SERVED_DOCS``: docs/http-api.md's curl
  calls) run whole — curl included — with `leads-pipeline serve` and the sandbox simulator up.

How they run: all the commands of one file, in document order, in one bash session (variables carry over, as in a
reader's terminal), in a private copy of the demo directory (its ``.env`` and ``data/``), stdin empty. Each must exit
0, except a command whose comment starts with ``refused:`` — ``# refused: 'converted' is final`` — which must be
refused the way the comment says: exit status 1 and those words in its error message.

Not run — the convention: a block whose info string carries the word ``norun`` (```` ```console norun ````; GitHub
still highlights it as ``console``). Only two kinds of command belong there, each named with its reason in
``NOT_RUN`` below, and the test fails when the docs' ``norun`` commands and that list differ:

- servers that run until stopped (``serve``, ``simulator serve``): this file starts them on free ports for
  docs/http-api.md and for the README's webhook steps (``test_readme_webhooks_without_a_meta_app``);
- commands that only make sense against real Meta (a real Page token on stdin).

Where a server is involved the only change to a command is its port: 8000 and 8765 may be taken by another run on
this machine, so free ones are put in (and LEADS_GRAPH_BASE_URL, the demo's .env says :8765, follows the sandbox).

Inline code in prose (``leads-pipeline sync KEY``) is a synopsis with placeholders, not an example: each one must
name commands and options that exist (``test_inline_synopses_name_real_commands_and_options``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import click
import pytest
import requests

from leads_pipeline_tests.demo_fixtures import demo_env

# One demo per session: under pytest-xdist (`-n 2 --dist loadgroup`) every test of it runs on one worker.
pytestmark = pytest.mark.xdist_group("demo")
REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_LANGUAGES = {"console", "bash", "sh", "shell"}
SERVED_DOCS = {"docs/http-api.md"}
WEBHOOKS_HEADING = "### Try webhooks without a Meta app"

WEBHOOK_STEPS = "run by test_readme_webhooks_without_a_meta_app with `serve` and the sandbox simulator up"
SERVER = "a server, runs until Ctrl-C; this file starts it on a free port"
#: Every ``leads-pipeline`` command in a ``norun`` block, and why it cannot run as the other examples do.
NOT_RUN: dict[tuple[str, str], str] = {
    ("README.md", 'echo "$TOKEN" | leads-pipeline distributors add "MSH Med Tour" --token-stdin --region TR'):
        "real Meta: needs a real long-lived Page token in $TOKEN",
    ("README.md", "leads-pipeline test-connection msh-med-tour"): "real Meta: the distributor added just above",
    ("README.md", "leads-pipeline sync msh-med-tour"): "real Meta: the distributor added just above",
    ("README.md", "leads-pipeline serve --port 8000"): f"{SERVER} ({WEBHOOK_STEPS})",
    ("README.md", "leads-pipeline simulator serve --sandbox"): f"{SERVER} ({WEBHOOK_STEPS})",
    ("README.md", "leads-pipeline webhooks subscribe --callback-url http://127.0.0.1:8000/webhooks/meta"):
        WEBHOOK_STEPS,
    ("README.md", "leads-pipeline webhooks inbox"): WEBHOOK_STEPS,
    ("README.md", "leads-pipeline webhooks process"): WEBHOOK_STEPS,
    ("README.md", "leads-pipeline lead list --per-page 5"): WEBHOOK_STEPS,
    ("docs/http-api.md", "leads-pipeline serve --host 127.0.0.1 --port 8000"):
        f"{SERVER} (test_every_served_doc_example_runs_against_serve_and_the_sandbox)",
    ("docs/deployment.md", "leads-pipeline serve --host 127.0.0.1 --port 8000 --secure-cookies"):
        "a production server behind HTTPS, runs until stopped",
}


@dataclass(frozen=True)
class Command:
    doc: str        # path relative to the repository
    line: int       # 1-based line of the command in the doc
    code: str       # the command without its comment, continuation lines joined
    comment: str    # its trailing comment ('' when none)
    runnable: bool  # False inside a ``norun`` block
    output: tuple[str, ...] = ()  # the lines a ``console`` block shows it printing

    @property
    def expect_failure(self) -> bool:
        return self.comment.lower().startswith("refused")

    @property
    def refusal(self) -> str:
        """What the comment quotes of the refusal (``# refused: 'converted' is final``): stderr must say it."""
        return self.comment.partition(":")[2].strip() if self.expect_failure else ""

    @property
    def runs_leads_pipeline(self) -> bool:
        return re.search(r"(?:^|[\s|;&(])leads-pipeline(?:\s|$)", self.code) is not None

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.code}"


def split_comment(line: str) -> tuple[str, str]:
    """(code, comment) of one shell line: a ``#`` that starts a word outside quotes begins the comment."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def extract(path: Path, text: str | None = None) -> list[Command]:
    """Every shell command of the code blocks of one Markdown file (or of ``text``, a part of it), in order."""
    text = path.read_text(encoding="utf-8") if text is None else text
    rel = path.relative_to(REPO).as_posix()
    commands: list[Command] = []
    for block in re.finditer(r"^([ \t]*)```([^\n]*)\n(.*?)^\1```[ \t]*$", text, re.MULTILINE | re.DOTALL):
        words = block.group(2).split()
        if not words or words[0] not in SHELL_LANGUAGES:
            continue
        console = words[0] == "console"
        first_line = text.count("\n", 0, block.start(3)) + 1
        indent = len(block.group(1))  # a block inside a list item is indented with it
        lines = [line[indent:] if line[:indent].isspace() else line for line in block.group(3).split("\n")]
        i = 0
        while i < len(lines):
            raw, number = lines[i], first_line + i
            i += 1
            if console:
                if not raw.startswith("$ "):
                    continue
                raw = raw[2:]
            elif not raw.strip() or raw.lstrip().startswith("#"):
                continue
            parts = []
            while raw.rstrip().endswith("\\") and i < len(lines):
                parts.append(raw.rstrip()[:-1].strip())
                raw = lines[i]
                i += 1
            code, comment = split_comment(raw)
            output = []
            while console and i < len(lines) and not lines[i].startswith("$ "):
                output.append(lines[i].strip())
                i += 1
            commands.append(Command(rel, number, " ".join([*parts, code.strip()]).strip(), comment,
                                    "norun" not in words[1:], tuple(line for line in output if line)))
    return commands


EVERY_COMMAND = [c for doc in DOCS for c in extract(doc)]
ALL_COMMANDS = [c for c in EVERY_COMMAND if c.runs_leads_pipeline]
RUNNABLE_DOCS = sorted({c.doc for c in ALL_COMMANDS if c.runnable} - SERVED_DOCS)


def run_in_one_shell(commands: list[Command], cwd: Path, env: dict[str, str], timeout: float = 600) -> list[dict]:
    """Run ``commands`` in order in one bash session in ``cwd``; each one's exit status, stdout and stderr."""
    out_dir = Path(tempfile.mkdtemp(prefix=".docs-test-", dir=cwd))
    script = ["set -o pipefail"]
    for n, cmd in enumerate(commands):
        # The newline before `}` keeps a `#` inside the command from swallowing the brace.
        script.append(f"{{ {cmd.code}\n}} </dev/null >{out_dir}/{n}.out 2>{out_dir}/{n}.err; echo $? >{out_dir}/{n}.rc")
    subprocess.run(["bash", "--noprofile", "--norc", "-c", "\n".join(script)], cwd=cwd, env=env, timeout=timeout,
                   check=False)

    def read(name: str) -> str:
        return (out_dir / name).read_text(errors="replace") if (out_dir / name).exists() else ""

    return [{"rc": int(read(f"{n}.rc")) if read(f"{n}.rc").strip() else None, "out": read(f"{n}.out"),
             "err": read(f"{n}.err")} for n in range(len(commands))]


def _pattern(shown: str) -> re.Pattern:
    return re.compile(".*?".join(re.escape(part) for part in shown.split("…")), re.DOTALL)


def unshown(shown: tuple[str, ...], out: str, err: str) -> list[str]:
    """What of the output a doc shows the command did not print (``…`` matches anything; JSON compared as JSON)."""
    if not shown:
        return []
    joined = " ".join(shown)
    if joined[0] in "{[":
        try:
            actual = json.loads(out)
        except ValueError:
            return [joined]
        if "…" in joined:  # elided: match the pattern against the JSON as the doc spaces it
            return [] if _pattern(joined).fullmatch(json.dumps(actual, ensure_ascii=False)) else [joined]
        try:
            return [] if json.loads(joined) == actual else [joined]
        except ValueError:
            return [joined]
    printed = [line.strip() for line in (out + "\n" + err).splitlines()]
    return [line for line in shown if not any(_pattern(line).fullmatch(p) for p in printed)]


def failures(commands: list[Command], results: list[dict]) -> list[str]:
    bad = []
    for cmd, res in zip(commands, results):
        note = ""
        if cmd.expect_failure:  # refused by the pipeline (exit 1, its message), not a usage error (exit 2)
            ok = res["rc"] == 1 and cmd.refusal.lower() in res["err"].lower()
        else:
            missing = unshown(cmd.output, res["out"], res["err"])
            ok = res["rc"] == 0 and not missing
            note = f"\n    the doc shows output it did not print: {missing}" if missing else ""
        if not ok:
            expected = f"a refusal saying {cmd.refusal!r} (exit 1)" if cmd.expect_failure else "exit 0"
            bad.append(f"{cmd}\n    expected {expected}, got {res['rc']}; stderr: {res['err'].strip()[-600:]}"
                       f"\n    stdout: {res['out'].strip()[-600:]}{note}")
    return bad


def test_the_docs_have_commands_and_every_norun_one_is_listed_with_its_reason() -> None:
    """The extraction finds the examples (a broken pattern would pass vacuously), and ``norun`` stays a short,
    reasoned list: a command marked in the docs but not in NOT_RUN, or listed but no longer marked, fails."""
    assert len([c for c in ALL_COMMANDS if c.runnable]) >= 35, [str(c) for c in ALL_COMMANDS]
    assert {"README.md", "docs/lead-operations.md", "docs/privacy.md"} <= set(RUNNABLE_DOCS)
    assert len([c for c in EVERY_COMMAND if c.doc in SERVED_DOCS and c.code.startswith("curl ")]) >= 8
    marked = {(c.doc, c.code) for c in ALL_COMMANDS if not c.runnable}
    assert marked - NOT_RUN.keys() == set(), "norun commands without a reason in NOT_RUN"
    assert NOT_RUN.keys() - marked == set(), "NOT_RUN lists commands the docs no longer mark norun"


def test_the_output_check_catches_what_a_doc_shows_wrongly() -> None:
    """The output rule itself: ``…`` elides, JSON is compared as JSON, a wrong figure or line is caught."""
    stats = '{"total":5369,"new":3207}'
    assert unshown(('{"total": 5369, "new": 3207}',), stats, "") == []
    assert unshown(("{", '"total": 5369,', '"new": 3207', "}"), stats, "") == []
    assert unshown(('{"total": 5369, "new": 3208}',), stats, "") != []
    assert unshown(('{"total": …, "new": 3207}',), stats, "") == []
    assert unshown(('{"total": …, "new": 1}',), stats, "") != []
    assert unshown(('{"id": "usr_…", "n": 2}',), '{"id":"usr_9f","n":2}', "") == []
    assert unshown(('{"id": "usr_…", "n": 3}',), '{"id":"usr_9f","n":2}', "") != []
    assert unshown(("Lead 12 moved: new → contacted",), "Lead 12 moved: new → contacted\n", "") == []
    assert unshown(("API key key_… (x) for a@example.com:",), "API key key_9f (x) for a@example.com:\n", "") == []
    assert unshown(("Lead 13 moved",), "Lead 12 moved\n", "") == ["Lead 13 moved"]


@pytest.mark.slow
@pytest.mark.parametrize("doc", RUNNABLE_DOCS)
def test_every_command_of_the_doc_runs_as_written_on_the_demo(doc, demo_copy) -> None:
    work = demo_copy("reader")
    commands = [c for c in ALL_COMMANDS if c.doc == doc and c.runnable]
    results = run_in_one_shell(commands, work, demo_env(work))
    bad = failures(commands, results)
    assert not bad, f"{len(bad)} of {len(commands)} commands in {doc} do not run as written after `make demo`:\n" + \
        "\n".join(bad)


# ------------------------------------------------------------------------ with `serve` and the sandbox up --

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_answering(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{url} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {timeout} s: {log.read_text()[-2000:]}")


@dataclass
class Services:
    serve_port: int
    sandbox_port: int
    env: dict[str, str]
    logs: list[Path]

    def local(self, text: str) -> str:
        """``text`` (a command or its shown output) with the free ports instead of 8000 and 8765."""
        text = text.replace("127.0.0.1:8000", f"127.0.0.1:{self.serve_port}")
        text = text.replace("--port 8000", f"--port {self.serve_port}")
        text = text.replace("127.0.0.1:8765", f"127.0.0.1:{self.sandbox_port}")
        return text.replace("simulator serve --sandbox", f"simulator serve --sandbox --port {self.sandbox_port}")

    def localize(self, cmd: Command) -> Command:
        return replace(cmd, code=self.local(cmd.code), output=tuple(self.local(line) for line in cmd.output))


@contextlib.contextmanager
def services(work: Path, serve: str = "leads-pipeline serve --port 8000",
             sandbox: str = "leads-pipeline simulator serve --sandbox") -> Iterator[Services]:
    """`serve` and the sandbox simulator started as the docs start them (free ports put in), in ``work``; stopped
    (SIGTERM, as Ctrl-C would) when done."""
    ports = Services(_free_port(), _free_port(), {}, [work / "serve.log", work / "sandbox.log"])
    ports.env = {**demo_env(work), "LEADS_GRAPH_BASE_URL": f"http://127.0.0.1:{ports.sandbox_port}"}
    procs: list[subprocess.Popen] = []
    try:
        for code, log in zip((serve, sandbox), ports.logs):
            procs.append(subprocess.Popen(["bash", "--noprofile", "--norc", "-c", f"exec {ports.local(code)}"],
                                          cwd=work, env=ports.env, stdin=subprocess.DEVNULL, stdout=log.open("w"),
                                          stderr=subprocess.STDOUT, start_new_session=True))
        _wait_until_answering(f"http://127.0.0.1:{ports.serve_port}/api/health", procs[0], ports.logs[0])
        _wait_until_answering(f"http://127.0.0.1:{ports.sandbox_port}/__simulator/scenario", procs[1], ports.logs[1])
        yield ports
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("doc", sorted(SERVED_DOCS))
def test_every_served_doc_example_runs_against_serve_and_the_sandbox(doc, demo_copy) -> None:
    """docs/http-api.md as a reader follows it: `serve` up, then every command in order — the CLI ones and the curl
    calls — with the JSON it shows compared to what the service answers."""
    commands = [c for c in EVERY_COMMAND if c.doc == doc and c.runnable]
    assert any(c.code.startswith("curl ") for c in commands)
    work = demo_copy("reader")
    served = [c for c in EVERY_COMMAND if c.doc == doc and not c.runnable and "serve" in c.code]
    with services(work, serve=served[0].code if served else "leads-pipeline serve --port 8000") as up:
        commands = [up.localize(c) for c in commands]
        results = run_in_one_shell(commands, work, up.env)
    bad = failures(commands, results)
    assert not bad, f"{len(bad)} of {len(commands)} commands in {doc} do not run as written:\n" + "\n".join(bad)


def _webhook_steps() -> list[Command]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(WEBHOOKS_HEADING)
    end = text.find("\n#", start + len(WEBHOOKS_HEADING))
    offset = text.count("\n", 0, start)
    steps = extract(REPO / "README.md", text[start:end if end != -1 else len(text)])
    return [replace(c, line=c.line + offset) for c in steps]


@pytest.mark.slow
def _inbox_processed(work, ids, *, seconds: float) -> bool:
    """Whether every webhook_inbox row of ``ids`` is processed within ``seconds`` (read through the readers' path)."""
    from leads_pipeline.lib.warehouse import Warehouse

    wh = Warehouse(f"duckdb:///{work / 'data' / 'leads.duckdb'}")
    marks = ",".join("?" * len(ids))
    deadline = time.monotonic() + seconds
    while True:
        with wh.transaction(read_only=True) as conn:
            rows = conn.query(f"SELECT status FROM webhook_inbox WHERE leadgen_id IN ({marks})", list(ids))
        if len(rows) >= len(ids) and {r["status"] for r in rows} == {"processed"}:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)


def test_readme_webhooks_without_a_meta_app(demo_copy) -> None:
    """The README's "Try webhooks without a Meta app", step by step, over real HTTP on loopback: `serve` and the
    sandbox simulator as the reader starts them, the subscription (the sandbox's hub.challenge handshake against
    `serve`), five leads delivered as signed webhooks, the inbox, processing, and the leads in the warehouse."""
    from leads_pipeline.lib.warehouse import Warehouse

    steps = _webhook_steps()
    servers = [c for c in steps if re.search(r"leads-pipeline (simulator )?serve\b", c.code)]
    steps = [c for c in steps if c not in servers]
    assert [c.code.split()[:3] for c in servers] == [["leads-pipeline", "serve", "--port"],
                                                     ["leads-pipeline", "simulator", "serve"]]
    assert [c.code.split()[0] for c in steps] == ["leads-pipeline", "curl", "leads-pipeline", "leads-pipeline",
                                                   "leads-pipeline"]
    work = demo_copy("reader")
    with services(work, serve=servers[0].code, sandbox=servers[1].code) as up:
        steps = [up.localize(c) for c in steps]
        first = run_in_one_shell(steps[:2], work, up.env, timeout=120)  # subscribe, then five leads now
        assert not failures(steps[:2], first), failures(steps[:2], first)
        new_ids = json.loads(first[1]["out"])["new_lead_ids"]
        assert len(new_ids) == 5
        deadline = time.monotonic() + 30  # the sandbox delivers in the background, as Meta does
        while True:
            stats = requests.get(f"http://127.0.0.1:{up.sandbox_port}/__simulator/webhooks", timeout=5).json()
            if (stats.get("changes_delivered", 0) >= 5 and not stats.get("pending")) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert stats["posts_ok"] >= 1 and stats["changes_delivered"] >= 5, stats
        # `serve` fetches what it stored by itself (LEADS_WEBHOOK_PROCESS=service, the default a reader has): the
        # five are processed seconds after the POSTs, before the reader looks at the inbox.
        assert _inbox_processed(work, new_ids, seconds=30), "serve did not fetch the delivered leads itself"
        rest = run_in_one_shell(steps[2:], work, up.env, timeout=300)  # inbox, process, lead list
        assert not failures(steps[2:], rest), failures(steps[2:], rest)
        assert "processed" in rest[0]["out"] and "pending" not in rest[0]["out"], rest[0]["out"]
        processed = json.loads(rest[1]["out"])["distributors"]
        assert not any(d["fatal"] for d in processed), processed
        assert all(i in rest[2]["out"] for i in new_ids)

    serve_log = up.logs[0].read_text()
    assert re.search(r'"GET /webhooks/meta\?[^"]* HTTP/1\.1" 200', serve_log), serve_log[-2000:]  # the handshake
    assert re.search(r'"POST /webhooks/meta HTTP/1\.1" 200', serve_log), serve_log[-2000:]  # signed deliveries
    wh = Warehouse(f"duckdb:///{work / 'data' / 'leads.duckdb'}")
    marks = ",".join("?" * len(new_ids))
    with wh.transaction(read_only=True) as conn:
        leads = conn.query(f"SELECT meta_lead_id, status FROM leads WHERE meta_lead_id IN ({marks})", new_ids)
        inbox = conn.query(f"SELECT leadgen_id FROM webhook_inbox WHERE leadgen_id IN ({marks})", new_ids)
    assert {r["meta_lead_id"] for r in leads} == set(new_ids) and {r["status"] for r in leads} == {"new"}
    assert {r["leadgen_id"] for r in inbox} == set(new_ids), inbox


@pytest.mark.slow
def test_a_wrong_callback_verify_token_is_refused_by_the_handshake(demo_copy) -> None:
    """The handshake is real: with a verify token `serve` does not share, the sandbox's check of the callback URL
    fails and `webhooks subscribe --callback-url` exits 1 saying so — nothing is delivered to a URL that did not
    prove it expects these webhooks."""
    work = demo_copy("reader")
    with services(work) as up:
        wrong = {**up.env, "LEADS_WEBHOOK_VERIFY_TOKEN": "not-the-one-serve-has"}
        cmd = Command("test", 0, f"leads-pipeline webhooks subscribe msh-med-tour --callback-url "
                                 f"http://127.0.0.1:{up.serve_port}/webhooks/meta", "", True)
        [res] = run_in_one_shell([cmd], work, wrong, timeout=120)
        stats = requests.get(f"http://127.0.0.1:{up.sandbox_port}/__simulator/webhooks", timeout=5).json()
    assert res["rc"] == 1 and "could not be subscribed" in res["err"] and "callback" in res["err"], res
    assert "not-the-one-serve-has" not in res["err"] + res["out"]
    assert not stats, stats  # no emitter: the subscription was refused


# ------------------------------------------------------------------------------------------- inline synopses --

def _synopsis_problems(span: str) -> list[str]:
    """What in one inline ``leads-pipeline …`` synopsis names no real command or option (placeholders are skipped)."""
    from leads_pipeline.cli import main

    try:
        tokens = shlex.split(span.replace("\\|", "|"))
    except ValueError:
        tokens = span.replace("\\|", "|").split()
    cmd: click.Command = main
    chain: list[click.Command] = [main]
    problems = []
    skip_value = False
    for token in tokens[1:]:
        if token in ("/", "·", "…", "|"):
            break
        if skip_value:
            skip_value = False
            continue
        bare = token.strip("[]…").split("=")[0]
        if bare in ("--help", "-h"):  # every command's help option (click adds it; it is not among the params)
            continue
        if bare.startswith("-"):
            opts = {o: p for c in chain for p in c.params for o in (*p.opts, *p.secondary_opts)}
            param = opts.get(bare)
            if param is None:
                problems.append(f"{span!r}: {' '.join(c.name for c in chain[1:])} has no option {bare}")
            elif not getattr(param, "is_flag", False) and "=" not in token and not token.endswith("]"):
                skip_value = True
            continue
        if isinstance(cmd, click.Group) and re.fullmatch(r"[a-z][a-z-]*(\|[a-z][a-z-]*)*", bare):
            names = bare.split("|")
            unknown = [n for n in names if n not in cmd.commands]
            if unknown:
                problems.append(f"{span!r}: no command {' '.join([*(c.name for c in chain[1:]), unknown[0]])}")
                break
            if len(names) > 1:
                break
            cmd = cmd.commands[names[0]]
            chain.append(cmd)
    return problems


def test_inline_synopses_name_real_commands_and_options() -> None:
    """`keys generate --quiet` was documented without existing; every inline synopsis is checked against the CLI."""
    spans = []
    for doc in DOCS:
        text = re.sub(r"^([ \t]*)```.*?^\1```", "", doc.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
        spans += re.findall(r"`(leads-pipeline [^`]+)`", text)
    assert len(spans) >= 30
    problems = [p for span in spans for p in _synopsis_problems(span)]
    assert not problems, "\n".join(problems)
    assert _synopsis_problems("leads-pipeline keys generate --bogus") and _synopsis_problems("leads-pipeline lead x")
