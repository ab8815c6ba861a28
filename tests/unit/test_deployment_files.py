"""The deployment files (Dockerfile, compose.yaml, nginx, scripts/stack) hold together.

Docker does not run on our machines, so nothing here builds an image: the files are parsed
and every file, command and option they name is checked against the repository and the
`task-manager` CLI. nginx checks its own configs when it is installed.
"""

import configparser
import fnmatch
import http.server
import re
import runpy
import shlex
import subprocess
import threading
from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from sqlalchemy import make_url

from app.cli import cli
from app.core.config import Settings
from tests.nginx import check_config, render_config
from tests.pgbouncer import keeps_prepared_statements, prepared_statements_line

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SERVICES = {"api", "worker", "beat", "postgres", "pgbouncer", "redis", "nginx"}
# The one location of deploy/nginx-proxy.conf for /metrics and /health/detailed, and whom it
# allows (of loopback only 127.0.0.1: docs/deployment.md uses 127.0.0.2 as an outside client).
OPERATIONAL_LOCATION = "~* ^/(metrics|health/detailed)(/|$)"
NGINX_ALLOWED = ("127.0.0.1", "::1", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
# First arguments deploy/docker-entrypoint.sh turns into `task-manager <role>`.
ENTRYPOINT_ROLES = {"serve", "worker", "beat", "migrate", "create-admin"}
CONTAINER_APP = "/app/"  # the Dockerfile's WORKDIR: /app/x in the image is ./x here


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def cli_commands() -> dict[str, set[str]]:
    """Subcommand -> its option names, from the real typer app."""
    group = typer.main.get_command(cli)
    return {
        name: {opt for param in command.params for opt in param.opts}
        for name, command in group.commands.items()  # type: ignore[attr-defined]
    }


def assert_cli_call(words: list[str], where: str) -> None:
    commands = cli_commands()
    subcommand, *rest = words
    assert subcommand in commands, f"{where}: `task-manager {subcommand}` does not exist"
    for word in rest:
        option = word.split("=", 1)[0]
        if option.startswith("--"):
            assert option in commands[subcommand], (
                f"{where}: `task-manager {subcommand}` has no option {option}"
            )


def our_image(service: dict[str, Any]) -> bool:
    return "build" in service


def dockerfile_lines() -> list[str]:
    """Instructions, with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [line.strip() for line in "\n".join(lines).replace("\\\n", " ").splitlines() if line]


def final_stage() -> list[str]:
    lines = dockerfile_lines()
    last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    return lines[last_from:]


def nginx_text() -> str:
    return (DEPLOY / "nginx.conf").read_text()


def proxy_text() -> str:
    return (DEPLOY / "nginx-proxy.conf").read_text()


def location_block(text: str, location: str) -> str:
    match = re.search(rf"location {re.escape(location)} \{{(.*?)\}}", text, re.DOTALL)
    assert match, f"no `location {location}` block"
    return match.group(1)


def named_location(text: str, name: str) -> str:
    """A named location's body (its JSON answer has braces of its own)."""
    match = re.search(rf"^location {name} \{{\n(.*?)\n\}}", text, re.DOTALL | re.MULTILINE)
    assert match, f"no `location {name}` block"
    return match.group(1)


class TestCompose:
    def test_the_whole_topology(self, services: dict[str, dict[str, Any]]) -> None:
        assert set(services) == SERVICES

    @pytest.mark.parametrize("name", sorted(SERVICES))
    def test_every_service_has_a_healthcheck(
        self, services: dict[str, dict[str, Any]], name: str
    ) -> None:
        healthcheck = services[name].get("healthcheck")
        assert healthcheck, f"{name} has no healthcheck"
        assert healthcheck["test"][0] in {"CMD", "CMD-SHELL"}
        assert not healthcheck.get("disable", False)

    def test_every_file_it_names_exists(self, services: dict[str, dict[str, Any]]) -> None:
        for name, service in services.items():
            build = service.get("build")
            if build:
                context = ROOT / build.get("context", ".")
                assert context.is_dir(), name
                assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
            for volume in service.get("volumes", []):
                source = volume.split(":", 1)[0]
                if source.startswith(("./", "../", "/")):
                    assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            command = service["healthcheck"]["test"][1:]
            for word in " ".join(command).split():
                if word.startswith(CONTAINER_APP) and our_image(service):
                    path = ROOT / word.removeprefix(CONTAINER_APP)
                    assert path.is_file(), f"{name} healthcheck runs missing {word}"

    def test_every_task_manager_command_exists(self, services: dict[str, dict[str, Any]]) -> None:
        for name, service in services.items():
            if not our_image(service):
                continue
            command = service["command"]
            assert command[0] in ENTRYPOINT_ROLES, f"{name}: unknown role {command[0]}"
            assert_cli_call(command, f"compose.yaml {name}")

    def test_the_nginx_include_is_mounted_where_nginx_conf_looks(
        self, services: dict[str, dict[str, Any]]
    ) -> None:
        mounts = dict(
            volume.rsplit(":", 1)[0].split(":", 1) for volume in services["nginx"]["volumes"]
        )
        assert mounts["./deploy/nginx.conf"] == "/etc/nginx/nginx.conf"
        target = mounts["./deploy/nginx-proxy.conf"]
        assert f"include {target};" in nginx_text()

    def test_only_nginx_publishes_a_port(self, services: dict[str, dict[str, Any]]) -> None:
        published = {name for name, service in services.items() if service.get("ports")}
        assert published == {"nginx"}
        assert services["nginx"]["ports"][0].startswith("${HTTP_BIND:-127.0.0.1}:")

    def test_beat_runs_once(self, services: dict[str, dict[str, Any]]) -> None:
        assert services["beat"]["deploy"]["replicas"] == 1

    def test_secrets_are_required_not_defaulted(self, compose: dict[str, Any]) -> None:
        environment = compose["x-app-environment"]
        assert environment["SECRET_KEY"].startswith("${SECRET_KEY:?")
        assert "${POSTGRES_PASSWORD:?" in environment["DATABASE_URL"]
        assert environment["ENVIRONMENT"] == "production"


def stack_placeholders(function: str) -> set[str]:
    """The placeholders a function of scripts/stack fills in (`${text//@NAME@/...}`)."""
    script = (ROOT / "scripts" / "stack").read_text()
    body = re.search(rf"^{function}\(\) \{{\n(.*?)^\}}", script, re.DOTALL | re.MULTILINE)
    assert body, f"no {function}() in scripts/stack"
    return set(re.findall(r"\$\{text//(@[A-Z_]+@)/", body.group(1)))


def pgbouncer_config(name: str) -> configparser.ConfigParser:
    # allow_no_value: the template's @PREPARED_STATEMENTS@ line becomes a setting or a comment.
    parser = configparser.ConfigParser(
        interpolation=None, comment_prefixes=(";",), allow_no_value=True
    )
    parser.read_string((DEPLOY / name).read_text())
    return parser


class TestPgBouncer:
    def test_the_processes_use_it_and_migrations_do_not(self, compose: dict[str, Any]) -> None:
        environment = compose["x-app-environment"]
        through = make_url(environment["DATABASE_URL"])
        direct = make_url(environment["MIGRATION_DATABASE_URL"])
        assert (through.host, through.port) == ("pgbouncer", 6432)
        assert (direct.host, direct.port) == ("postgres", 5432)
        assert through.database == direct.database
        assert environment["DB_TRANSACTION_POOLING"] == "true"

    def test_compose_mounts_its_config(self, services: dict[str, dict[str, Any]]) -> None:
        assert (
            "./deploy/pgbouncer.ini:/etc/pgbouncer/pgbouncer.ini:ro"
            in (services["pgbouncer"]["volumes"])
        )
        assert services["pgbouncer"]["image"].count(":") == 1  # pinned by tag
        assert not services["pgbouncer"]["image"].endswith(":latest")

    def test_the_stack_fills_in_every_placeholder(self) -> None:
        template = (DEPLOY / "pgbouncer.stack.ini.template").read_text()
        placeholders = set(re.findall(r"@[A-Z_]+@", template))
        assert stack_placeholders("render_pgbouncer") == placeholders

    def test_compose_keeps_prepared_statements_with_a_pgbouncer_that_can(
        self, compose: dict[str, Any], services: dict[str, dict[str, Any]]
    ) -> None:
        tag = services["pgbouncer"]["image"].rsplit(":", 1)[1]
        version = tuple(int(part) for part in tag.split(".")[:2])
        assert keeps_prepared_statements((version[0], version[1]))
        config = pgbouncer_config("pgbouncer.ini")
        assert int(config["pgbouncer"]["max_prepared_statements"]) > 0
        assert compose["x-app-environment"]["DB_POOLER_PREPARED_STATEMENTS"] == "true"

    def test_the_template_keeps_prepared_statements_only_where_pgbouncer_can(self) -> None:
        assert prepared_statements_line((1, 24)) == "max_prepared_statements = 200"
        assert prepared_statements_line((1, 21)).startswith("max_prepared_statements = ")
        assert prepared_statements_line((1, 18)).startswith(";")  # 1.18 refuses the key

    def test_compose_and_the_stack_pool_alike(self) -> None:
        compose, stack = (
            pgbouncer_config("pgbouncer.ini"),
            pgbouncer_config("pgbouncer.stack.ini.template"),
        )
        for key in ("pool_mode", "query_wait_timeout", "unix_socket_dir"):
            assert compose["pgbouncer"][key] == stack["pgbouncer"][key], key
        assert compose["pgbouncer"]["pool_mode"] == "transaction"
        timeout = Settings.model_fields["DB_STATEMENT_TIMEOUT_MS"].default
        assert (
            f"connect_query='SET statement_timeout = {timeout}'"
            in (compose["databases"]["task_manager"])
        )
        assert (
            "connect_query='SET statement_timeout = @STATEMENT_TIMEOUT_MS@'"
            in (stack["databases"]["*"])
        )


class TestDockerfile:
    def test_multi_stage_slim_runtime(self) -> None:
        stages = [line for line in dockerfile_lines() if line.upper().startswith("FROM ")]
        assert len(stages) >= 2
        assert re.search(r"\bAS builder\b", stages[0], re.IGNORECASE)
        assert "${PYTHON_IMAGE}" in stages[-1]
        assert "ARG PYTHON_IMAGE=python:3.11-slim" in " ".join(dockerfile_lines())
        assert any(line.startswith("COPY --from=builder /opt/venv") for line in final_stage())

    def test_runs_as_a_non_root_user(self) -> None:
        users = [line.split()[1] for line in final_stage() if line.upper().startswith("USER ")]
        assert users, "no USER in the final stage"
        assert users[-1].split(":")[0] not in {"root", "0"}

    def test_has_a_healthcheck_that_exists(self) -> None:
        checks = [line for line in final_stage() if line.upper().startswith("HEALTHCHECK ")]
        assert len(checks) == 1
        assert "/app/deploy/healthcheck.py" in checks[0]
        assert (DEPLOY / "healthcheck.py").is_file()

    def test_migrates_then_serves(self) -> None:
        entrypoint = [line for line in final_stage() if line.upper().startswith("ENTRYPOINT ")]
        assert entrypoint == ['ENTRYPOINT ["/bin/sh", "/app/deploy/docker-entrypoint.sh"]']
        assert 'CMD ["serve"]' in final_stage()
        script = "\n".join(
            line
            for line in (DEPLOY / "docker-entrypoint.sh").read_text().splitlines()
            if not line.lstrip().startswith("#")
        )
        calls = re.findall(r"task-manager ([a-z-]+)", script)
        assert calls.index("migrate") < calls.index("serve")
        assert "--workers" in script
        assert "WEB_CONCURRENCY" in script

    def test_every_task_manager_call_in_the_entrypoint_exists(self) -> None:
        script = (DEPLOY / "docker-entrypoint.sh").read_text()
        script = script.replace("\\\n", " ")
        for line in script.splitlines():
            if line.strip().startswith("#"):
                continue
            for match in re.finditer(r"task-manager ([a-z][a-z-]*)((?: [^;|&]*)?)", line):
                words = [match.group(1), *shlex.split(match.group(2))]
                assert_cli_call(words, "deploy/docker-entrypoint.sh")
        roles = re.findall(r"^\s*([a-z| -]+)\)\s*$", script, re.MULTILINE)
        handled = {role.strip() for group in roles for role in group.split("|")}
        assert handled >= ENTRYPOINT_ROLES

    def test_copies_only_what_exists_and_is_not_ignored(self) -> None:
        ignored = [
            line.strip().removeprefix("**/").rstrip("/")
            for line in (ROOT / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith(("#", "!"))
        ]
        for line in dockerfile_lines():
            if not line.upper().startswith("COPY ") or "--from=" in line:
                continue
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"COPY of missing {source}"
                hit = [pattern for pattern in ignored if fnmatch.fnmatch(source, pattern)]
                assert not hit, f"{source} is copied but .dockerignore excludes it ({hit})"

    def test_secrets_and_local_state_stay_out_of_the_image(self) -> None:
        ignored = set((ROOT / ".dockerignore").read_text().split())
        assert {".env", ".secret_key", ".stack/", ".venv/", ".git"} <= ignored


class TestNginx:
    def test_operational_endpoints_are_internal_only(self) -> None:
        """One location for every spelling. It allows loopback and the private ranges, none of
        them outside the app's INTERNAL_NETWORKS (the app would refuse them), then no one."""
        block = location_block(proxy_text(), OPERATIONAL_LOCATION)
        allowed = re.findall(r"allow ([^;]+);", block)
        assert set(allowed) == set(NGINX_ALLOWED)
        for network in map(ip_network, allowed):
            assert any(
                network.version == internal.version and network.subnet_of(internal)  # type: ignore[arg-type]
                for internal in Settings().INTERNAL_NETWORKS
            ), network
        assert block.index("deny all;") > max(block.index(f"allow {a};") for a in allowed)
        exact = re.search(r"^location = /(metrics|health)", proxy_text(), re.MULTILINE)
        assert exact is None or exact.group(0) == "location = /health", "exact matches leak"

    @pytest.mark.parametrize(
        ("uri", "matched"),
        [
            ("/metrics", True),
            ("/metrics/", True),
            ("/metrics/x", True),
            ("/METRICS", True),
            ("/health/detailed", True),
            ("/health/detailed/", True),
            ("/metricsx", False),
            ("/health", False),
            ("/health/detailedx", False),
            ("/tasks/metrics", False),
        ],
    )
    def test_the_operational_location_matches_every_spelling(
        self, uri: str, *, matched: bool
    ) -> None:
        """On nginx's normalised $uri (decoded, slashes merged: tests/integration/
        test_nginx_proxy.py sends the raw spellings through a real nginx)."""
        pattern = OPERATIONAL_LOCATION.removeprefix("~* ")
        assert bool(re.match(pattern, uri, re.IGNORECASE)) is matched

    def test_nginx_answers_what_it_refuses_in_json(self) -> None:
        text = proxy_text()
        pages = re.findall(r"error_page ([\d ]+?) (=\d+ )?(@\w+);", text)
        assert {code for codes, _, _ in pages for code in codes.split()} >= {
            "403",
            "413",
            "494",
            "502",
            "503",
            "504",
        }
        for codes, overwrite, target in pages:
            block = named_location(text, target)
            assert "default_type application/json;" in block
            returned = re.search(r"return (\d+) '(\{\"detail\":\"[^\"]+\"\})';", block)
            assert returned, target
            # `=431` sets the status; without it nginx keeps the status it handles.
            expected = [overwrite.strip(" =")] if overwrite else codes.split()
            assert returned.group(1) in expected, (codes, target)
        # An outsider's 404 is the app's own for an absent path.
        assert 'return 404 \'{"detail":"Not Found"}\';' in named_location(text, "@not_found")

    def test_header_buffers_hold_max_header_bytes(self) -> None:
        buffers = re.search(r"large_client_header_buffers (\d+) (\d+)k;", proxy_text())
        assert buffers
        assert int(buffers.group(1)) * int(buffers.group(2)) * 1024 == Settings().MAX_HEADER_BYTES

    def test_hsts_on_the_tls_server(self) -> None:
        text = nginx_text()
        hsts = re.search(r'add_header Strict-Transport-Security "max-age=(\d+)[^"]*" always;', text)
        assert hsts
        assert int(hsts.group(1)) >= 31536000
        # Inherited by every location only if proxy.conf adds no headers of its own.
        assert "add_header" not in proxy_text()

    def test_limits_and_headers(self) -> None:
        text = proxy_text()
        assert "server_tokens off;" in text
        size = re.search(r"client_max_body_size (\d+)m;", text)
        assert size
        assert int(size.group(1)) * 1024 * 1024 == Settings().MAX_BODY_BYTES
        for header in ("Host", "X-Real-IP", "X-Forwarded-For", "X-Forwarded-Proto", "X-Request-ID"):
            assert re.search(rf"proxy_set_header {header} \S+;", text), header
        for timeout in ("proxy_connect_timeout", "proxy_read_timeout", "proxy_send_timeout"):
            assert re.search(rf"{timeout} \d+s;", text), timeout
        assert re.search(r"gzip_types [^;]*application/json", text)

    @pytest.mark.parametrize("name", ["nginx.conf", "nginx.stack.conf.template"])
    def test_access_log_has_no_query_string(self, name: str) -> None:
        text = (DEPLOY / name).read_text()
        log_format = re.search(r"log_format task_manager(.*?);\n", text, re.DOTALL)
        assert log_format
        for variable in ("$request ", '$request"', "$args", "$query_string", "$request_uri"):
            assert variable not in log_format.group(1)
        assert "$http_authorization" not in text

    def test_the_stack_uses_the_same_proxy_rules(self) -> None:
        template = (DEPLOY / "nginx.stack.conf.template").read_text()
        assert "include @PROJECT_DIR@/deploy/nginx-proxy.conf;" in template
        assert stack_placeholders("render_nginx") == set(re.findall(r"@[A-Z_]+@", template))

    @pytest.mark.parametrize("name", ["nginx.conf", "nginx.stack.conf.template"])
    def test_nginx_accepts_the_config(self, name: str, tmp_path: Path) -> None:
        config = render_config(name, tmp_path, listen="127.0.0.1:65080", upstream="127.0.0.1:65081")
        result = check_config(config, tmp_path)
        assert result.returncode == 0, result.stderr


class TestScripts:
    def test_stack_script_parses(self) -> None:
        script = ROOT / "scripts" / "stack"
        assert script.stat().st_mode & 0o111
        subprocess.run(["bash", "-n", str(script)], check=True)

    def test_entrypoint_parses(self) -> None:
        subprocess.run(["sh", "-n", str(DEPLOY / "docker-entrypoint.sh")], check=True)

    def test_stack_commands_exist(self) -> None:
        script = (ROOT / "scripts" / "stack").read_text()
        for match in re.finditer(r'"\$BIN/task-manager" ([a-z-]+)([^\n]*)', script):
            words = [match.group(1), *re.findall(r"--[a-z-]+", match.group(2))]
            assert_cli_call(words, "scripts/stack")

    def test_make_targets(self) -> None:
        makefile = (ROOT / "Makefile").read_text()
        assert re.search(r"^stack: .*## ", makefile, re.MULTILINE)
        assert re.search(r"^stack-down: .*## ", makefile, re.MULTILINE)
        assert "scripts/stack up" in makefile
        assert "scripts/stack down" in makefile

    @pytest.mark.parametrize("path", ["scripts/stack", "scripts/run-tests", ".ci/run"])
    def test_no_reader_that_stops_early_in_a_pipefail_pipeline(self, path: str) -> None:
        """`producer | grep -q x`: grep exits at the first match, a producer still writing
        gets SIGPIPE, and under `set -o pipefail` the pipeline is then false although x was
        there. `scripts/stack start api-18001` failed so ("unknown part") in a reliability
        drill, under load (`{ echo a; sleep 0.3; echo b; } | grep -q a` exits 141). Give
        grep the whole text instead: `grep -q x <<<"$(producer)"`."""
        script = (ROOT / path).read_text()
        assert "set -euo pipefail" in script or "set -uo pipefail" in script
        early_exit = re.compile(r"\|\s*(grep\s+-\w*q|head\b)")
        offending = [line for line in script.splitlines() if early_exit.search(line)]
        assert offending == []

    def test_stack_state_is_git_ignored(self) -> None:
        assert ".stack/" in (ROOT / ".gitignore").read_text().split()


class TestGunicornConfig:
    def test_uvicorn_workers_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("WEB_CONCURRENCY", "3")
        monkeypatch.setenv("GUNICORN_GRACEFUL_TIMEOUT", "12")
        config = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
        assert config["worker_class"] == "app.uvicorn_worker.UvicornWorker"
        assert config["workers"] == 3
        assert config["graceful_timeout"] == 12
        # gunicorn's own access log stays off (uvicorn's logs path and query, never headers).
        assert config["accesslog"] is None


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.hosts.append(self.headers["Host"])  # type: ignore[attr-defined]
        status = 200 if self.path == "/health" else 503
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    server.hosts = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class TestHealthcheck:
    @pytest.fixture
    def healthcheck(self) -> dict[str, Any]:
        return runpy.run_path(str(DEPLOY / "healthcheck.py"))

    def test_http_200_is_healthy_anything_else_not(
        self, healthcheck: dict[str, Any], local_server: http.server.HTTPServer
    ) -> None:
        base = f"http://127.0.0.1:{local_server.server_port}"
        assert healthcheck["main"](["http", f"{base}/health"]) == 0
        assert healthcheck["main"](["http", f"{base}/health/detailed"]) == 1
        assert healthcheck["main"](["http", "http://127.0.0.1:1/health"]) == 1
        assert healthcheck["main"](["http", "file:///etc/passwd"]) == 1
        assert healthcheck["main"](["nonsense"]) == 1

    def test_sends_a_trusted_host(
        self,
        healthcheck: dict[str, Any],
        local_server: http.server.HTTPServer,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        url = f"http://127.0.0.1:{local_server.server_port}/health"
        monkeypatch.setenv("TRUSTED_HOSTS", '["*.example.com", "api.example.com"]')
        assert healthcheck["main"](["http", url]) == 0
        monkeypatch.setenv("TRUSTED_HOSTS", "*.example.com")
        assert healthcheck["main"](["http", url]) == 0
        assert local_server.hosts == ["api.example.com", "healthcheck.example.com"]  # type: ignore[attr-defined]
