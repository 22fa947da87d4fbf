"""Property-based fuzzing (hypothesis) of what comes from outside: lead payloads, field_data shapes, phone and email
strings, webhook bodies and headers. Bounded: ``max_examples`` per test, ``deadline=None``; about 2,100 cases in the regular suite, 34,000 under ``-m soak``.

- ``parsing.parse_leads``: a batch never raises; every input is either a lead or a rejection whose reason is one of
  ``REASONS`` with a detail; a stored email is normalised, a stored phone is E.164.
- ``land_raw_page`` + ``process_raw`` (the recovery path; a sync's ``land_page`` parses with the same code) on a real DuckDB file: a whole batch of arbitrary payloads never crashes;
  every landed raw row is processed; every distinct payload ends either in ``leads`` or in ``rejected_leads`` with a
  reason.
- the webhook receiver (in-process Starlette app over a real DuckDB): any body and headers get 200/400/403/413 and
  never a 5xx; nothing is stored unless the signature is valid.
"""

from __future__ import annotations

import json
import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leads_pipeline.lib.ingest import land as landing
from leads_pipeline.lib.ingest import store as storing
from leads_pipeline.lib.ingest import parse as parsing
from leads_pipeline.lib.security import sign
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline_tests.reliability_fixtures import settings_env

FIELD_NAMES = ["email", "work_email", "phone_number", "work_phone_number", "full_name", "first_name", "last_name",
               "city", "country", "zip_code", "treatment", "", "EMAIL", "phone"]

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63), st.floats(allow_nan=True),
                         st.text(max_size=30))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)

emails = st.one_of(
    st.emails().map(str),
    st.builds(lambda a, b: f" {a.upper()}@{b}.COM ", st.text(string.ascii_letters, min_size=1, max_size=8),
              st.text(string.ascii_lowercase, min_size=1, max_size=8)),
    st.text(max_size=40),
    st.text(alphabet="@.ab é\u0000\ud800", max_size=15),
)
phones = st.one_of(
    st.text(alphabet="+0123456789 ()-.", max_size=20),
    st.builds(lambda n: f"+90 5{n:09d}", st.integers(0, 10**9 - 1)),
    st.builds(lambda n: f"05{n:09d}", st.integers(0, 10**9 - 1)),
    st.builds(lambda n: f"+1 (415) {n:07d}", st.integers(0, 10**7 - 1)),
    st.text(max_size=25),
)
values = st.one_of(emails, phones, st.text(max_size=20), json_values)
entries = st.one_of(
    st.fixed_dictionaries({"name": st.sampled_from(FIELD_NAMES), "values": st.lists(values, max_size=3)}),
    st.fixed_dictionaries({"name": st.just("email"), "values": st.lists(emails, min_size=1, max_size=2)}),
    st.fixed_dictionaries({"name": st.just("phone_number"), "values": st.lists(phones, min_size=1, max_size=2)}),
    st.dictionaries(st.sampled_from(["name", "values", "id"]), json_values, max_size=3),
    json_values,
)
ids = st.one_of(st.integers(1, 10**17).map(str), st.integers(1, 10**17), st.text(max_size=12), st.none(),
                st.just(""), st.just("00012"), st.just("１２３"))
times = st.one_of(
    st.builds(lambda s: f"2026-{(s % 12) + 1:02d}-{(s % 28) + 1:02d}T{s % 24:02d}:{s % 60:02d}:00+0000",
              st.integers(0, 10**6)),
    st.just("2026-05-01T10:00:00Z"), st.just("2026-05-01T10:00:00"), st.just("2026-02-30T10:00:00+0000"),
    st.text(max_size=25), st.integers(), st.none(),
)
leads = st.one_of(
    st.fixed_dictionaries(
        {"id": ids, "created_time": times, "field_data": st.one_of(st.lists(entries, max_size=6), json_values)},
        optional={"ad_id": ids, "form_id": ids, "is_organic": json_values, "platform": json_values,
                  "custom_disclaimer_responses": json_values, "campaign_name": st.text(max_size=20)},
    ),
    json_values,
)

# E.164 allows 15 digits; libphonenumber (the project's validator) accepts some longer German numbers (+49 and up
# to 15 national digits) as valid, so 17 is the bound checked here.
_E164 = re.compile(r"^\+[1-9][0-9]{5,16}$")


def _check_batch(raws: list, parsed: list, rejected: list) -> None:
    assert len(parsed) + len(rejected) == len(raws)
    for r in rejected:
        assert r.reason in parsing.REASONS and r.detail and r.reject_key
    for p in parsed:
        assert p.meta_lead_id and p.meta_lead_id.isdigit() and p.created_time.tzinfo is not None
        assert p.email or p.phone or (p.status == "rejected" and p.status_reason)  # unreachable: kept, flagged
        if p.email is not None:
            assert p.email == p.email.strip().lower() and "@" in p.email
        if p.phone is not None:
            assert _E164.match(p.phone), p.phone


def _bounded(examples: int, soak_examples: int, *strategies, **kw_strategies):
    """The property as two tests: ``examples`` cases in the regular suite, ``soak_examples`` under ``-m soak``."""
    def wrap(fn):
        def make(n):
            prop = given(*strategies, **kw_strategies)(fn)
            return settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))(prop)
        regular = make(examples)
        soak = pytest.mark.soak(make(soak_examples))
        return regular, soak
    return wrap


def _parse_batch(raws, region):
    parsed, rejected = parsing.parse_leads(raws, distributor="d", page_id="1", default_region=region)
    _check_batch(raws, parsed, rejected)


test_parse_leads_never_raises_and_every_reject_has_a_reason, test_soak_parse_leads = _bounded(
    500, 10_000, st.lists(leads, max_size=12), st.sampled_from(["TR", "US", "DE", "GB", "XX", ""]))(_parse_batch)


def _normalise(email, phone, region):
    e = parsing.normalise_email(email)
    assert e is None or (e == e.strip().lower() and "@" in e)
    p = parsing.normalise_phone(phone, region)
    assert p is None or _E164.match(p), p


test_email_and_phone_normalisation_never_raises, test_soak_email_and_phone = _bounded(
    1500, 20_000, emails, phones, st.sampled_from(["TR", "US", "DE", None]))(_normalise)


@pytest.fixture(scope="module")
def fuzz_wh(tmp_path_factory) -> Warehouse:
    wh = Warehouse(f"duckdb:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.duckdb'}")
    wh.migrate()
    return wh


def _land_and_process(fuzz_wh, raws):
    wh = fuzz_wh
    with wh.transaction() as conn:
        for table in ("raw_leads", "leads", "rejected_leads", "sync_cursors"):
            conn.execute(f"DELETE FROM {table}")
    landed = landing.land_raw_page(wh, sync_id="s-fuzz", distributor="fz", page_id="1", form_id="9", leads=raws,
                                  cursor=None)
    keys = {parsing.lead_key(r) for r in raws}
    assert landed == len(keys)
    result = storing.process_raw(wh, "fz", default_region="TR")
    with wh.transaction(read_only=True) as conn:
        unprocessed = conn.scalar("SELECT count(*) FROM raw_leads WHERE processed_at IS NULL")
        stored = {r["meta_lead_id"] for r in conn.query("SELECT meta_lead_id FROM leads")}
        rejects = conn.query("SELECT reject_key, reason, detail FROM rejected_leads")
    assert unprocessed == 0
    assert result.processed == len(keys)
    assert all(r["reason"] in parsing.REASONS and r["detail"] for r in rejects)
    # Every distinct payload is accounted for, once: a lead (its id is its raw key) or a reject with its reason.
    assert stored <= keys
    assert len(stored) + len(rejects) == len(keys)


test_land_and_process_a_whole_arbitrary_batch_on_duckdb, test_soak_land_and_process = _bounded(
    30, 1000, raws=st.lists(leads, min_size=1, max_size=25))(_land_and_process)


# -- the webhook receiver ---------------------------------------------------------------------------------------------

SECRET = "fuzz-app-secret-0123456789"
MAX_BODY = 4096

delivery_values = st.fixed_dictionaries(
    {"leadgen_id": st.one_of(ids, json_values)},
    optional={"page_id": st.one_of(ids, json_values), "form_id": ids, "created_time": st.one_of(st.integers(), times),
              "ad_id": ids, "adgroup_id": ids},
)
changes = st.one_of(st.fixed_dictionaries({"field": st.sampled_from(["leadgen", "feed", ""]),
                                           "value": st.one_of(delivery_values, json_values)}), json_values)
bodies_json = st.one_of(
    st.fixed_dictionaries({"object": st.one_of(st.just("page"), json_values),
                           "entry": st.one_of(st.lists(st.fixed_dictionaries(
                               {"id": ids, "time": st.integers(), "changes": st.one_of(st.lists(changes, max_size=4),
                                                                                       json_values)}), max_size=3),
                               json_values)}),
    json_values,
)
bodies = st.one_of(
    bodies_json.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.binary(max_size=200),
    st.just(b"{" * 3000),
    st.just(b" " * (MAX_BODY + 10)),
    st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
signature_modes = st.sampled_from(["valid", "missing", "wrong", "garbage", "sha1", "uppercase", "empty"])


@pytest.fixture(scope="module")
def receiver_client(tmp_path_factory):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from leads_pipeline.web.webhooks import close_writers, webhook_routes

    wh = Warehouse(f"duckdb:///{tmp_path_factory.mktemp('hook') / 'hooks.duckdb'}")
    wh.migrate()
    app = Starlette(routes=webhook_routes(wh, max_body_bytes=MAX_BODY))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, wh
    close_writers()


def _inbox_count(wh: Warehouse) -> int:
    with wh.transaction(read_only=True) as conn:
        return int(conn.scalar("SELECT coalesce(sum(deliveries), 0) FROM webhook_inbox"))


def _receiver_answers(receiver_client, monkeypatch, body, mode, content_type, extra):
    client, wh = receiver_client
    settings_env(monkeypatch, app_secret=SECRET)
    headers = dict(extra)
    good = sign(body, SECRET)
    if mode == "valid":
        headers["X-Hub-Signature-256"] = good
    elif mode == "wrong":
        headers["X-Hub-Signature-256"] = sign(body + b"x", SECRET)
    elif mode == "garbage":
        headers["X-Hub-Signature-256"] = "sha256=zz" + good[-10:]
    elif mode == "sha1":
        headers["X-Hub-Signature-256"] = "sha1=" + good.split("=", 1)[1]
    elif mode == "uppercase":
        headers["X-Hub-Signature-256"] = "SHA256=" + good.split("=", 1)[1].upper()
    elif mode == "empty":
        headers["X-Hub-Signature-256"] = ""
    if content_type:
        headers["Content-Type"] = content_type
    before = _inbox_count(wh)
    resp = client.post("/webhooks/meta", content=body, headers=headers)
    assert resp.status_code in (200, 400, 403, 413), (resp.status_code, resp.text[:200])
    after = _inbox_count(wh)
    if resp.status_code != 200:
        assert after == before
    if mode != "valid" and mode != "uppercase":
        assert resp.status_code in (403, 413) and after == before
    if len(body) > MAX_BODY:
        assert resp.status_code == 413


test_webhook_receiver_answers_only_200_400_403_413_and_stores_only_signed, test_soak_webhook_receiver = _bounded(
    100, 3000, body=bodies, mode=signature_modes,
    content_type=st.sampled_from(["application/json", "text/plain", None]),
    extra=st.dictionaries(st.sampled_from(["X-Hub-Signature", "Content-Encoding", "X-Forwarded-For"]),
                          st.text(alphabet=string.printable.strip(), max_size=20), max_size=2))(_receiver_answers)
