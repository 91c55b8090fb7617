"""http_health against real local HTTP(S) servers started by the test, through ansible-runner."""
import http.server
import json
import shutil
import ssl
import subprocess
import threading

import pytest

from support.runner import run_module

MODULE = "stackops.runbooks.stack_http_info"


def failed(res):
    # Failed results arrive as runner_on_failed events; the result dict itself has no "failed" key.
    return bool(res["_run"].task_results(event_types=("runner_on_failed",)))


class Behaviour:
    """What the test server answers, decided by how many requests came before (never by the clock): 503 for the
    first ``ready_after`` requests, then 200 (with ``flap``, every second answer is a 503 again)."""

    def __init__(self, ready_after=0, body=None, flap=False):
        self.ready_after = ready_after
        self.body = body if body is not None else {"status": "healthy", "db": {"connected": True}}
        self.flap = flap
        self.requests = 0
        self.first_ok = None  # the number of the first request answered 200

    def answer(self):
        self.requests += 1
        if self.requests <= self.ready_after or (self.flap and self.requests % 2 == 0):
            return 503, {"status": "starting"}
        if self.first_ok is None:
            self.first_ok = self.requests
        return 200, self.body


def serve(behaviour, tls_context=None):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            status, body = behaviour.answer()
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls_context:
        server.socket = tls_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture
def http_server():
    servers = []

    def start(behaviour, tls_context=None):
        server = serve(behaviour, tls_context)
        servers.append(server)
        scheme = "https" if tls_context else "http"
        return "%s://127.0.0.1:%d/health" % (scheme, server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_waits_until_ready_and_stops_at_the_first_healthy_answer(http_server):
    behaviour = Behaviour(ready_after=3)
    url = http_server(behaviour)
    res = run_module(MODULE, {"url": url, "name": "slow", "json": {"db.connected": True}, "interval": 0.2,
                              "wait_timeout": 120})
    assert not failed(res), res.get("msg")
    assert res["healthy"] is True and res["status"] == 200
    # Three answers of 503 were waited through; the first 200 ended the wait, and no probe came after it.
    assert res["attempts"] == behaviour.requests == behaviour.first_ok == 4
    assert res["time_to_healthy"] is not None
    assert res["check"]["severity"] == "OK" and res["check"]["name"] == "http slow"
    assert res["response_json"]["db"]["connected"] is True
    assert res["changed"] is False


def test_json_expectation_mismatch_fails_with_the_field(http_server):
    url = http_server(Behaviour(body={"status": "healthy", "db": {"connected": False}}))
    res = run_module(MODULE, {"url": url, "name": "api-db", "json": {"db.connected": True}, "wait": False})
    assert failed(res)
    assert "JSON field db.connected is false, expected true" in res["msg"]
    assert res["check"]["severity"] == "CRITICAL"
    assert res["attempts"] == 1


def test_deadline_message_says_what_and_how_long(http_server):
    behaviour = Behaviour(ready_after=10 ** 9)
    url = http_server(behaviour)
    res = run_module(MODULE, {"url": url, "name": "never", "wait_timeout": 2, "interval": 0.5})
    assert failed(res)
    assert "not healthy after" in res["msg"] and "HTTP 503 (expected 200)" in res["msg"]
    assert "(%d attempts)" % behaviour.requests in res["msg"] and "docker compose" in res["msg"]
    assert res["last_error"] == "HTTP 503 (expected 200)"
    # It kept probing until the deadline: every probe the server saw is counted, and there was more than one.
    assert res["attempts"] == behaviour.requests > 1
    assert res["time_to_healthy"] is None


def test_flapping_endpoint_needs_consecutive_successes(http_server):
    url = http_server(Behaviour(flap=True))
    res = run_module(MODULE, {"url": url, "consecutive_successes": 3, "wait_timeout": 2, "interval": 0.2})
    assert failed(res) and res["healthy"] is False
    steady = run_module(MODULE, {"url": http_server(Behaviour()), "consecutive_successes": 3, "interval": 0.2})
    assert steady["healthy"] is True and steady["attempts"] == 3


def test_single_probe_reports_instead_of_failing(http_server):
    url = http_server(Behaviour())
    res = run_module(MODULE, {"url": url, "wait": False, "body_regex": "no-such-text", "fail_on_unhealthy": False})
    assert not failed(res)
    assert res["healthy"] is False and res["check"]["severity"] == "CRITICAL"
    assert "body does not match regex" in res["check"]["message"]
    ok = run_module(MODULE, {"url": url, "wait": False, "status_code": [200, 204], "body_regex": '"status": "healthy"'})
    assert ok["healthy"] is True


def test_connection_refused_is_reported(http_server):
    res = run_module(MODULE, {"url": "http://127.0.0.1:9/health", "wait": False, "fail_on_unhealthy": False})
    assert res["healthy"] is False and "no response" in res["last_error"]


def test_latency_warning(http_server):
    url = http_server(Behaviour())
    res = run_module(MODULE, {"url": url, "wait": False, "latency_warning_ms": 0})
    assert res["healthy"] is True and res["check"]["severity"] == "WARNING"


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    openssl = shutil.which("openssl")
    if not openssl:
        pytest.fail("openssl is needed for the TLS tests: apt-get install openssl")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    return cert, context


def test_tls_validation_and_private_ca(http_server, self_signed):
    cert, context = self_signed
    url = http_server(Behaviour(), tls_context=context)
    untrusted = run_module(MODULE, {"url": url, "wait": False, "fail_on_unhealthy": False})
    assert untrusted["healthy"] is False and "CERTIFICATE_VERIFY_FAILED" in untrusted["last_error"].upper().replace(" ", "_")
    trusted = run_module(MODULE, {"url": url, "wait": False, "ca_path": str(cert)})
    assert trusted["healthy"] is True
    unchecked = run_module(MODULE, {"url": url, "wait": False, "validate_certs": False})
    assert unchecked["healthy"] is True
