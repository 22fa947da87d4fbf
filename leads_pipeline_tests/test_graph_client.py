"""GraphClient endpoints and credentials on the wire: token only in the header, appsecret_proof, page listing,
forms, debug_token, webhook subscription."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json

import pytest

from leads_pipeline.lib.graph import ACCOUNT_FIELDS, FORM_FIELDS, LEAD_FIELDS, GraphClient, GraphError
from leads_pipeline_tests.graph_fixtures import (  # noqa: F401
    APP_SECRET,
    TOKEN,
    FakeGraph,
    Reply,
    graph,
    make_client,
    ok,
    sample,
    sleeps,
    with_next,
)

PAGE_TOKEN = "EAAGpageTOKENforPAGE1abcdefghijklmnopqrstuvwxyz0123456789"
EXPECTED_PROOF = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()


def _script_accounts(graph):
    first = {"data": [{"id": "111", "name": "Page One", "access_token": PAGE_TOKEN, "tasks": ["ADVERTISE"]}],
             "paging": {"cursors": {"before": "b1", "after": "a1"},
                        "next": graph.link("/v25.0/me/accounts", access_token=TOKEN, fields="id,name", after="a1")}}
    last = {"data": [{"id": "222", "name": "Page Two", "access_token": "EAAGother", "tasks": ["MANAGE"]}],
            "paging": {"cursors": {"before": "b2", "after": "a2"}}}
    graph.script("GET", "/v25.0/me/accounts", ok(first), ok(last))


def test_token_travels_only_in_the_authorization_header_and_proof_is_hmac(graph, make_client):
    _script_accounts(graph)
    forms = with_next(sample("leadgen_forms_page__constructed"), None)
    graph.script("GET", "/v25.0/111/leadgen_forms", ok(forms))
    graph.script("GET", "/v25.0/900000000000001", ok(sample("lead_single__meta_retrieving_doc")))
    graph.script("GET", "/v25.0/333333333333331/leads", ok(with_next(sample("leads_page_full__constructed"), None)))
    graph.script("POST", "/v25.0/111/subscribed_apps", ok({"success": True}))
    graph.script("POST", "/v25.0/", ok([{"code": 200, "body": '{"id": "900000000000001"}'}]))

    client = make_client(app_secret=APP_SECRET)
    client.me_accounts()
    client.leadgen_forms("111")
    client.get_lead("900000000000001")
    list(client.iter_lead_pages("333333333333331", since=1780000000))
    client.subscribe_page("111")
    client.get_leads_batch(["900000000000001"])

    assert graph.count == 7
    for rec in graph.requests:
        assert TOKEN not in rec.raw_target and TOKEN not in rec.body.decode()
        assert "access_token" not in rec.query and "access_token" not in rec.form
        assert rec.headers["authorization"] == f"Bearer {TOKEN}"
        assert rec.query["appsecret_proof"] == [EXPECTED_PROOF]
    assert client.request_count == 7


def test_without_app_secret_no_proof_is_sent(graph, make_client):
    graph.script("GET", "/v25.0/900000000000001", ok(sample("lead_single__meta_retrieving_doc")))
    make_client().get_lead("900000000000001")
    assert "appsecret_proof" not in graph.requests[0].query


def test_repr_shows_no_secrets():
    client = GraphClient(TOKEN, app_secret=APP_SECRET)
    text = repr(client)
    assert TOKEN not in text and APP_SECRET not in text and EXPECTED_PROOF not in text
    assert "graph.facebook.com" in text


def test_me_accounts_follows_next_and_returns_every_page(graph, make_client):
    _script_accounts(graph)
    pages = make_client().me_accounts()
    assert [p["id"] for p in pages] == ["111", "222"]
    assert pages[0]["access_token"] == PAGE_TOKEN and pages[0]["tasks"] == ["ADVERTISE"]
    first, second = graph.requests
    assert first.q("fields") == ",".join(ACCOUNT_FIELDS) and first.q("limit") == "100"
    assert second.q("after") == "a1" and "access_token" not in second.query


def test_with_token_uses_the_page_token_and_counts_its_own_requests(graph, make_client):
    _script_accounts(graph)
    graph.script("GET", "/v25.0/111/leadgen_forms", ok(with_next(sample("leadgen_forms_page__constructed"), None)))
    user = make_client(app_secret=APP_SECRET)
    page = user.with_token(user.me_accounts()[0]["access_token"])
    forms = page.leadgen_forms("111")
    assert [f["id"] for f in forms] == ["333333333333331", "333333333333332"]
    rec = graph.requests[-1]
    assert rec.headers["authorization"] == f"Bearer {PAGE_TOKEN}"
    assert rec.q("appsecret_proof") == hmac.new(APP_SECRET.encode(), PAGE_TOKEN.encode(), hashlib.sha256).hexdigest()
    assert rec.q("fields") == ",".join(FORM_FIELDS)
    assert user.request_count == 2 and page.request_count == 1  # per client, so a sync can add them up
    assert PAGE_TOKEN not in repr(page)


def test_debug_token_sends_own_token_as_input_and_returns_data(graph, make_client):
    graph.script("GET", "/v25.0/debug_token", ok(sample("debug_token__constructed")))
    data = make_client().debug_token()
    assert data["is_valid"] is True and "leads_retrieval" in data["scopes"]
    rec = graph.requests[0]
    assert rec.q("input_token") == TOKEN
    assert rec.headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(("answer", "expected"),
                         [({"success": True}, True), ({"success": "true"}, True), (True, True),
                          ({"success": False}, False)])
def test_subscribe_page_posts_leadgen_and_reads_success(graph, make_client, answer, expected):
    graph.script("POST", "/v25.0/111/subscribed_apps", ok(answer))
    assert make_client().subscribe_page("111") is expected
    rec = graph.requests[0]
    assert rec.method == "POST" and rec.form["subscribed_fields"] == ["leadgen"]


def test_subscribed_apps_lists_apps(graph, make_client):
    graph.script("GET", "/v25.0/111/subscribed_apps",
                 ok(sample("subscriptions__constructed")["GET /{page-id}/subscribed_apps"]))
    apps = make_client().subscribed_apps("111")
    assert apps[0]["subscribed_fields"] == ["leadgen"]


def test_get_lead_sends_explicit_fields(graph, make_client):
    graph.script("GET", "/v25.0/900000000000001", ok(sample("lead_single__meta_retrieving_doc")))
    lead = make_client().get_lead("900000000000001")
    assert lead["field_data"][1] == {"name": "full_name", "values": ["Joe Example"]}
    assert graph.requests[0].q("fields") == ",".join(LEAD_FIELDS)


def test_get_encodes_list_params_as_compact_sorted_json(graph, make_client):
    graph.script("GET", "/v25.0/111/leads", ok({"data": []}))
    make_client().get("111/leads", {"fields": ["id", "created_time"], "filtering": [{"value": 5, "field": "x"}],
                                    "summary": True})
    rec = graph.requests[0]
    assert rec.q("fields") == "id,created_time"
    assert rec.q("filtering") == '[{"field":"x","value":5}]'
    assert rec.q("summary") == "true"


def test_get_refuses_query_strings_and_credentials_in_params(make_client):
    client = make_client()
    with pytest.raises(ValueError):
        client.get("111/leads?access_token=x")
    with pytest.raises(ValueError):
        client.get("111/leads", {"access_token": TOKEN})


def test_next_link_to_another_host_is_refused_and_gets_no_token(graph, make_client):
    evil = FakeGraph().start()
    try:
        page = with_next(sample("leadgen_forms_page__constructed"), evil.link("/v25.0/111/leadgen_forms", after="x"))
        graph.script("GET", "/v25.0/111/leadgen_forms", ok(page))
        with pytest.raises(GraphError) as info:
            make_client().leadgen_forms("111")
        assert "refusing to send the token" in str(info.value)
        assert evil.count == 0
        # the same host on another port is another origin too
        assert "?" not in str(info.value)
    finally:
        evil.stop()


def test_version_and_base_url_are_validated():
    with pytest.raises(ValueError):
        GraphClient(TOKEN, api_version="25")
    with pytest.raises(ValueError):
        GraphClient(TOKEN, base_url="ftp://graph.facebook.com")
    with pytest.raises(ValueError):
        GraphClient("")


def test_an_http_proxy_from_the_environment_carries_every_request(graph, make_client, monkeypatch):
    """Behind a corporate proxy (``HTTP(S)_PROXY``, read once when the client is made): the fake server stands in for
    the proxy, so the request reaches it with the Graph host in an absolute target."""
    monkeypatch.setenv("HTTP_PROXY", graph.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    for _ in range(2):
        graph.script("GET", "/v25.0/900000000000001", ok(sample("lead_single__meta_retrieving_doc")))
    client = make_client(base_url="http://graph.facebook.test")
    reader = client.with_token(own_session=True)  # a reading thread's own session is made the same way
    try:
        assert client.get_lead("900000000000001")["id"] and reader.get_lead("900000000000001")["id"]
    finally:
        reader.close()
    assert [r.raw_target.split("?")[0] for r in graph.requests] == [
        "http://graph.facebook.test/v25.0/900000000000001"] * 2


def test_a_proxy_user_and_password_from_the_environment_are_sent_to_the_proxy(graph, make_client, monkeypatch):
    """``HTTP_PROXY=http://user:password@proxy:port`` (the password percent-encoded): the proxy gets them as
    ``Proxy-Authorization: Basic …``, and Meta never sees them."""
    import base64

    port = graph.url.rsplit(":", 1)[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://corp%5Cuser:p%40ss@127.0.0.1:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    graph.script("GET", "/v25.0/900000000000001", ok(sample("lead_single__meta_retrieving_doc")))
    assert make_client(base_url="http://graph.facebook.test").get_lead("900000000000001")["id"]
    sent = graph.requests[0].headers
    assert sent["proxy-authorization"] == "Basic " + base64.b64encode(b"corp\\user:p@ss").decode()
    assert sent["authorization"] == f"Bearer {TOKEN}"


def test_no_proxy_sends_the_graph_host_direct(graph, make_client, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there: a proxied request would fail
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    graph.script("GET", "/v25.0/900000000000001", ok(sample("lead_single__meta_retrieving_doc")))
    assert make_client(max_retries=0).get_lead("900000000000001")["id"]
    assert len(graph.requests) == 1


def test_pages_are_asked_for_compressed_and_read_when_they_come_so(graph, make_client):
    """Meta gzips a page of 100 leads from ~80 KB to ~10 KB for a client that accepts it: the client asks, and reads
    the compressed answer as the page."""
    page = with_next(sample("leads_page_full__constructed"), None)
    graph.script("GET", "/v25.0/333333333333331/leads",
                 ok(gzip.compress(json.dumps(page).encode()), headers={"Content-Encoding": "gzip"}))
    pages = list(make_client().iter_lead_pages("333333333333331"))
    assert "gzip" in graph.requests[0].headers["accept-encoding"]
    assert [lead["id"] for lead in pages[0].leads] == [lead["id"] for lead in page["data"]]


def test_an_answer_whose_compression_is_broken_is_asked_for_again(graph, make_client):
    """A proxy that mangles a gzipped body is a passing fault: the request is retried, not the sync failed."""
    page = with_next(sample("leads_page_full__constructed"), None)
    graph.script("GET", "/v25.0/333333333333331/leads",
                 ok(b"\x1f\x8b\x08\x00 not gzip at all", headers={"Content-Encoding": "gzip"}), ok(page))
    pages = list(make_client().iter_lead_pages("333333333333331"))
    assert graph.count == 2
    assert len(pages[0].leads) == len(page["data"])


def test_one_client_used_by_several_threads_at_once_keeps_its_connections(graph, make_client, caplog):
    """A client shared by threads (a sync's first reader and its discovery, a service) opens a connection per request
    in flight; they all go back to its pool instead of being dropped with a warning each."""
    import threading

    for _ in range(4):
        graph.script("GET", "/v25.0/900000000000001",
                     Reply(body=sample("lead_single__meta_retrieving_doc"), action="hang", delay=0.3))
    client = make_client()
    with caplog.at_level("WARNING", logger="urllib3"):
        threads = [threading.Thread(target=client.get_lead, args=("900000000000001",)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert graph.count == 4
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


@pytest.fixture
def tls_graph(tmp_path):
    """The fake Graph API behind TLS on loopback, with a self-signed certificate for ``localhost``; yields
    ``(server, base_url, certificate_path)``."""
    import datetime
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "graph.pem", tmp_path / "graph.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = FakeGraph()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server._server.socket = context.wrap_socket(server._server.socket, server_side=True)
    server.start()
    yield server, f"https://localhost:{server._server.server_address[1]}", cert_path
    server.stop()


def test_a_certificate_nobody_vouches_for_is_refused_at_once(tls_graph, make_client, monkeypatch):
    """TLS is verified against certifi's bundle (as requests did): a self-signed certificate fails the call with a
    TLS error, without retries — a certificate problem does not fix itself."""
    server, base_url, _ = tls_graph
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    client = make_client(base_url=base_url)
    with pytest.raises(GraphError, match="TLS error"):
        client.get_lead("900000000000001")
    assert client.request_count == 1 and server.count == 0


def test_a_ca_bundle_from_the_environment_is_trusted(tls_graph, make_client, monkeypatch):
    """Behind a TLS-inspecting proxy or with a private CA, ``REQUESTS_CA_BUNDLE`` names the certificates to trust
    (read when the client is made)."""
    server, base_url, cert_path = tls_graph
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_path))
    server.script("GET", "/v25.0/900000000000001", ok(sample("lead_single__meta_retrieving_doc")))
    assert make_client(base_url=base_url).get_lead("900000000000001")["id"]
    assert server.count == 1
