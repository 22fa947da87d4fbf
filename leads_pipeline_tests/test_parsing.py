"""Lead JSON → typed row or quarantine, per docs/lead-validation.md."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leads_pipeline.lib.ingest.parse import (
    REASONS,
    ParsedLead,
    Rejection,
    canonical_json,
    lead_key,
    normalise_email,
    normalise_phone,
    parse_created_time_unix,
    parse_lead,
    parse_leads,
)

SAMPLES = Path("/work/shared/reference/meta-samples")


def lead(**overrides):
    base = {
        "id": "900000000000001",
        "created_time": "2026-06-01T12:34:56+0000",
        "form_id": "333333333333331",
        "field_data": [
            {"name": "full_name", "values": ["Ayşe Yılmaz"]},
            {"name": "email", "values": ["ayse@example.com"]},
            {"name": "phone_number", "values": ["0532 123 45 67"]},
        ],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def parse(raw, region="TR"):
    return parse_lead(raw, distributor="msh-med-tour", page_id="111", default_region=region)


def reason_of(raw, region="TR"):
    result = parse(raw, region)
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    assert result.reason in REASONS
    assert result.detail
    return result.reason


def reference_phone(raw, region):
    """What the validity rule says, straight from phonenumbers."""
    try:
        num = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


# ----------------------------------------------------------------------------------------------------------------------
# Valid leads
# ----------------------------------------------------------------------------------------------------------------------


def test_valid_lead_columns():
    result = parse(lead(ad_id="120200000000000001", ad_name="Ad A", adset_id="2", adset_name="Set", campaign_id="3",
                        campaign_name="Camp", is_organic=False, platform="fb"))
    assert isinstance(result, ParsedLead)
    assert result.meta_lead_id == "900000000000001"
    assert result.distributor == "msh-med-tour"
    assert result.page_id == "111"
    assert result.form_id == "333333333333331"
    assert (result.ad_id, result.ad_name, result.adset_id, result.adset_name, result.campaign_id,
            result.campaign_name) == ("120200000000000001", "Ad A", "2", "Set", "3", "Camp")
    assert result.created_time == datetime(2026, 6, 1, 12, 34, 56, tzinfo=timezone.utc)
    assert result.created_time.utcoffset().total_seconds() == 0
    assert result.is_organic is False and result.platform == "fb"
    assert result.full_name == "Ayşe Yılmaz"
    assert result.email == "ayse@example.com"
    assert result.phone == "+905321234567"
    assert result.custom_fields == {}
    assert result.disclaimer_responses == []


def test_meta_samples_parse():
    page = json.loads((SAMPLES / "leads_page_full__constructed.json").read_text())
    parsed, rejected = parse_leads(page["data"], distributor="d", page_id="1", default_region="TR")
    assert rejected == []
    paid, organic = parsed
    assert paid.email == "jane@example.com" and paid.city == "Springfield"
    assert paid.campaign_name == "Campaign A" and paid.platform == "fb" and paid.is_organic is False
    assert paid.custom_fields["what_is_your_budget?"] == ["$10k-$50k"]
    # +1 555-555-0100 is a fictional (invalid) number: kept as typed, flagged; the lead is reachable by email.
    assert paid.phone is None and paid.phone_raw == "+15555550100" and paid.status == "new"
    assert "phone_number" not in paid.custom_fields
    assert paid.disclaimer_responses == [{"checkbox_key": "optional_1", "is_checked": "1"}]
    assert organic.is_organic is True and organic.platform == "ig" and organic.ad_id is None
    assert organic.campaign_id is None and organic.full_name == "Sam Example"


def test_meta_doc_sample_with_placeholders_is_rejected_and_valid_once_filled_in():
    single = json.loads((SAMPLES / "lead_single__meta_retrieving_doc.json").read_text())
    assert reason_of(single) == "bad_id"  # "<LEAD_ID>" is a placeholder, not a Meta id
    single["id"] = "1231231231"
    result = parse(single)
    assert isinstance(result, ParsedLead)
    assert result.created_time == datetime(2015, 2, 28, 8, 49, 14, tzinfo=timezone.utc)
    assert result.email == "joe@example.com" and result.full_name == "Joe Example"
    assert result.custom_fields == {"car_make": ["Honda"], "selected_dealer": ["99213450"]}
    # The disclaimer sample is a partial read (?fields=custom_disclaimer_responses): no created_time.
    disclaimer = json.loads((SAMPLES / "lead_custom_disclaimer_responses__meta_retrieving_doc.json").read_text())
    assert reason_of(disclaimer) == "bad_created_time"


def test_organic_lead_without_ad_fields():
    result = parse(lead(is_organic=True, platform="ig"))
    assert isinstance(result, ParsedLead)
    assert result.is_organic is True
    assert result.platform == "ig"
    assert result.ad_id is result.adset_id is result.campaign_id is result.campaign_name is None


@pytest.mark.parametrize(
    "typed, region, e164",
    [
        ("0532 123 45 67", "TR", "+905321234567"),
        ("05321234567", "TR", "+905321234567"),
        ("5321234567", "TR", "+905321234567"),
        ("(0532) 123 4567", "TR", "+905321234567"),
        ("0532-123-45-67", "TR", "+905321234567"),
        ("0 532 123 45 67", "TR", "+905321234567"),
        ("+90 532 123 45 67", "TR", "+905321234567"),
        ("+90 (532) 123-45-67", "TR", "+905321234567"),
        ("+905321234567", "TR", "+905321234567"),
        ("0090 532 123 45 67", "TR", "+905321234567"),
        ("905321234567", "TR", "+905321234567"),
        ("  +90 532 123 4567  ", "TR", "+905321234567"),
        ("0212 345 67 89", "TR", "+902123456789"),  # Istanbul landline
        ("+44 7400 123456", "TR", "+447400123456"),
        ("0044 7400 123456", "TR", "+447400123456"),
        ("+49 151 23456789", "TR", "+4915123456789"),
        ("+971 50 123 4567", "TR", "+971501234567"),
        ("+1 (202) 555-0123", "TR", "+12025550123"),
        ("07400 123456", "GB", "+447400123456"),
        ("0151 23456789", "DE", "+4915123456789"),
        ("tel: +90 532 123 45 67", "TR", "+905321234567"),  # not a simple shape: phonenumbers decides
    ],
)
def test_typed_phones_become_e164(typed, region, e164):
    assert normalise_phone(typed, region) == e164
    assert reference_phone(typed, region) == e164


@pytest.mark.parametrize("typed", ["12345", "0532 12", "555", "000000", "+90 123", "n/a", "0", "", "   ",
                                   "+0 532 123 45 67", "0532 123 45 67 89 01 23", "abc"])
def test_invalid_phones_are_none(typed):
    assert normalise_phone(typed, "TR") is None


@pytest.mark.parametrize("value", [None, 5321234567, 3.5, ["0532 123 45 67"], {"n": 1}, True])
def test_non_string_phone_is_none(value):
    assert normalise_phone(value, "TR") is None


_PHONE_CHARS = st.sampled_from("0123456789" * 3 + " -().")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    region=st.sampled_from(sorted(phonenumbers.SUPPORTED_REGIONS)),
    plus=st.booleans(),
    prefix=st.sampled_from(["", "0", "00", "011", "8", "1", "90", "44", "0090"]),
    body=st.text(_PHONE_CHARS, min_size=1, max_size=18),
)
def test_fast_phone_path_agrees_with_phonenumbers(region, plus, prefix, body):
    typed = ("+" if plus else "") + prefix + body
    assert normalise_phone(typed, region) == reference_phone(typed, region)


@settings(max_examples=300, deadline=None)
@given(
    region=st.sampled_from(["TR", "DE", "GB", "US", "AE", "NL", "FR", "RU", "SA", "IT", "CA", "JE", "KZ"]),
    owner=st.sampled_from(sorted(phonenumbers.SUPPORTED_REGIONS)),
    kind=st.sampled_from([phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]),
    style=st.sampled_from([phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                           phonenumbers.PhoneNumberFormat.NATIONAL]),
    tail=st.integers(0, 999),
)
def test_fast_phone_path_agrees_on_real_numbers(region, owner, kind, style, tail):
    """Numbers of every region (mostly valid), as phonenumbers itself formats them, read from other regions."""
    example = phonenumbers.example_number_for_type(owner, kind)
    if example is None:
        return
    nsn = str(example.national_number)
    if len(nsn) > 4:
        nsn = nsn[:-3] + f"{tail:03d}"
    number = phonenumbers.PhoneNumber(country_code=example.country_code, national_number=int(nsn),
                                      italian_leading_zero=example.italian_leading_zero)
    typed = phonenumbers.format_number(number, style)
    assert normalise_phone(typed, region) == reference_phone(typed, region)


@pytest.mark.parametrize(
    "typed, expected",
    [
        ("  Ayse.Yilmaz@Gmail.COM ", "ayse.yilmaz@gmail.com"),
        ("JANE@EXAMPLE.COM", "jane@example.com"),
        ("a.b+tag@sub.example.co.uk", "a.b+tag@sub.example.co.uk"),
        ("ayse@gmail", None),
        ("ayse.gmail.com", None),
        ("ayse @gmail.com", "ayse@gmail.com"),  # typing slips are repaired
        ("harrytaylor1990 @icloud.com", "harrytaylor1990@icloud.com"),
        ("Ayse . Yilmaz@ Gmail.com", "ayse.yilmaz@gmail.com"),
        ("ayse@@gmail.com", "ayse@gmail.com"),
        ("ayse@gmail,com", "ayse@gmail.com"),
        ("schaefer.maximilian@posteo,de", "schaefer.maximilian@posteo.de"),
        ("ayşe@gmail.com", None),
        ("ayse@gmail", None),
        ("ayse@ gmail", None),
        ("a@b@c.com", None),
        ("   ", None),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_emails_trimmed_lowercased_and_validated(typed, expected):
    assert normalise_email(typed) == expected


def test_invalid_email_next_to_valid_phone_keeps_lead_and_raw_answer():
    raw = lead(field_data=[{"name": "email", "values": ["ayse@gmail"]},
                           {"name": "phone_number", "values": ["+90 532 123 45 67"]}])
    result = parse(raw)
    assert isinstance(result, ParsedLead)
    assert result.email is None and result.email_raw == "ayse@gmail"
    assert result.phone == "+905321234567" and result.phone_raw is None
    assert (result.status, result.status_reason) == ("new", None)
    assert result.custom_fields == {}


def test_invalid_phone_next_to_valid_email_keeps_lead_and_raw_answer():
    raw = lead(field_data=[{"name": "email", "values": [" Ayse@Example.com"]},
                           {"name": "phone_number", "values": ["12345"]}])
    result = parse(raw)
    assert isinstance(result, ParsedLead)
    assert result.email == "ayse@example.com" and result.email_raw is None
    assert result.phone is None and result.phone_raw == "12345"
    assert result.custom_fields == {}


def test_work_email_and_work_phone_used_when_the_plain_questions_are_absent():
    raw = lead(field_data=[{"name": "work_email", "values": ["Boss@Corp.example.com"]},
                           {"name": "work_phone_number", "values": ["0212 345 67 89"]},
                           {"name": "company_name", "values": ["Koç Holding"]}])
    result = parse(raw)
    assert result.email == "boss@corp.example.com" and result.phone == "+902123456789"
    assert result.custom_fields == {"company_name": ["Koç Holding"]}


def test_blank_email_next_to_a_work_email_uses_the_work_email():
    raw = lead(field_data=[{"name": "email", "values": [""]},
                           {"name": "work_email", "values": ["boss@corp.example.com"]}])
    result = parse(raw)
    assert result.email == "boss@corp.example.com" and result.status == "new"
    assert result.custom_fields == {}


def test_plain_email_first_and_the_work_email_kept():
    raw = lead(field_data=[{"name": "email", "values": ["me@example.com"]},
                           {"name": "work_email", "values": ["boss@corp.example.com"]}])
    result = parse(raw)
    assert result.email == "me@example.com"
    assert result.custom_fields == {"work_email": ["boss@corp.example.com"]}


def test_multi_select_and_repeated_questions_keep_every_value():
    raw = lead(field_data=[
        {"name": "email", "values": ["a@example.com"]},
        {"name": "treatment_of_interest", "values": ["FUE Hair Transplant", "PRP Therapy", "Beard Transplant"]},
        {"name": "travel_month", "values": ["June"]},
        {"name": "travel_month", "values": ["July"]},
    ])
    result = parse(raw)
    assert result.custom_fields == {
        "treatment_of_interest": ["FUE Hair Transplant", "PRP Therapy", "Beard Transplant"],
        "travel_month": ["June", "July"],
    }


def test_names_city_country_and_disclaimers():
    raw = lead(field_data=[
        {"name": "first_name", "values": [" Jürgen "]},
        {"name": "last_name", "values": ["Müller"]},
        {"name": "email", "values": ["j@example.de"]},
        {"name": "city", "values": ["München"]},
        {"name": "country", "values": ["Germany"]},
    ], custom_disclaimer_responses=[{"checkbox_key": "optional_1", "is_checked": "1"},
                                    {"checkbox_key": "optional_2", "is_checked": ""}])
    result = parse(raw)
    assert (result.full_name, result.first_name, result.last_name) == ("Jürgen Müller", "Jürgen", "Müller")
    assert (result.city, result.country) == ("München", "Germany")
    assert result.custom_fields == {}
    assert result.disclaimer_responses == [{"checkbox_key": "optional_1", "is_checked": "1"},
                                           {"checkbox_key": "optional_2", "is_checked": ""}]


def test_form_id_falls_back_to_where_the_lead_was_read():
    raw = lead(form_id=...)
    result = parse_lead(raw, distributor="d", page_id="1", default_region="TR", form_id="777")
    assert result.form_id == "777"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-06-01T12:34:56+0000", datetime(2026, 6, 1, 12, 34, 56, tzinfo=timezone.utc)),
        ("2026-06-01T12:34:56+00:00", datetime(2026, 6, 1, 12, 34, 56, tzinfo=timezone.utc)),
        ("2026-06-01T12:34:56Z", datetime(2026, 6, 1, 12, 34, 56, tzinfo=timezone.utc)),
        ("2026-06-01T15:34:56+0300", datetime(2026, 6, 1, 12, 34, 56, tzinfo=timezone.utc)),
        ("2026-06-01T07:04:56-05:30", datetime(2026, 6, 1, 12, 34, 56, tzinfo=timezone.utc)),
        ("2026-06-01T12:34:56.250+0000", datetime(2026, 6, 1, 12, 34, 56, 250000, tzinfo=timezone.utc)),
    ],
)
def test_created_time_offsets_become_utc(text, expected):
    result = parse(lead(created_time=text))
    assert result.created_time == expected
    assert result.created_time.utcoffset().total_seconds() == 0
    assert parse_created_time_unix(text) == int(expected.timestamp())


# ----------------------------------------------------------------------------------------------------------------------
# Rejections: every reason, first reason wins
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lead_id", [..., None, ""])
def test_missing_id(lead_id):
    assert reason_of(lead(id=lead_id)) == "missing_id"


@pytest.mark.parametrize("lead_id", ["lead_8842", "1234ab", "12 34", "-1", 900000000000001, 1.5, ["1"], "１２３"])
def test_bad_id(lead_id):
    assert reason_of(lead(id=lead_id)) == "bad_id"


@pytest.mark.parametrize("created", [..., None, "", "2026-06-01 12:34:56", "2026-06-01T12:34:56", "1780000000",
                                     1780000000, "2026-06-01T12:34:56+2500", "2026-06-01T12:34:56+0360",
                                     "2026-02-30T12:00:00+0000", "2026-06-01T24:00:00+0000", "01/06/2026",
                                     "2026-06-01T12:34:60Z", "0001-01-01T00:00:00+0100"])
def test_bad_created_time(created):
    assert reason_of(lead(created_time=created)) == "bad_created_time"


@pytest.mark.parametrize("field_data", [..., None, {}, "full_name=x", [["email", "a@b.co"]], [{"name": "email"}],
                                        [{"values": ["a@b.co"]}], [{"name": 1, "values": ["a@b.co"]}],
                                        [{"name": "email", "values": "a@b.co"}],
                                        [{"name": "email", "values": ["a@b.co"]}, None]])
def test_bad_field_data(field_data):
    assert reason_of(lead(field_data=field_data)) == "bad_field_data"


@pytest.mark.parametrize("field_data, email_raw, phone_raw", [
    ([], None, None),
    ([{"name": "full_name", "values": ["Ayşe"]}], None, None),
    ([{"name": "email", "values": [""]}, {"name": "phone_number", "values": [""]}], None, None),
    ([{"name": "email", "values": []}, {"name": "phone_number", "values": []}], None, None),
    ([{"name": "email", "values": ["ayse@gmail"]}], "ayse@gmail", None),
    ([{"name": "email", "values": ["ayse@gmail"]}, {"name": "phone_number", "values": ["12345"]}], "ayse@gmail",
     "12345"),
    ([{"name": "email", "values": [None, 42]}, {"name": "phone_number", "values": [5321234567]}], None, None),
])
def test_no_valid_contact_is_a_lead_stored_as_rejected(field_data, email_raw, phone_raw):
    result = parse(lead(field_data=field_data))
    assert isinstance(result, ParsedLead), "a lead with an id is never quarantined for its contacts"
    assert (result.status, result.status_reason) == ("rejected", "no valid contact")
    assert result.email is None and result.phone is None
    assert (result.email_raw, result.phone_raw) == (email_raw, phone_raw)


def test_first_reason_wins():
    assert reason_of(lead(id=None, created_time="bad", field_data=None)) == "missing_id"
    assert reason_of(lead(id="x", created_time="bad", field_data=None)) == "bad_id"
    assert reason_of(lead(created_time="bad", field_data=None)) == "bad_created_time"
    assert reason_of(lead(field_data=[{"name": "x"}, {"name": "email", "values": ["bad"]}])) == "bad_field_data"


@pytest.mark.parametrize("raw", [None, [], "lead", 42, ["id", "1"]])
def test_not_an_object_is_bad_field_data(raw):
    assert reason_of(raw) == "bad_field_data"


def test_rejection_carries_what_it_needs():
    raw = lead(created_time="yesterday")
    rej = parse(raw)
    assert isinstance(rej, Rejection)
    assert rej.meta_lead_id == "900000000000001"
    assert rej.reject_key == "900000000000001"
    assert rej.form_id == "333333333333331"
    assert rej.payload == raw
    assert "created_time" in rej.detail


def test_reject_key_of_payload_without_usable_id_is_a_stable_hash():
    a = {"id": "lead_1", "created_time": "x", "field_data": []}
    b = {"field_data": [], "created_time": "x", "id": "lead_1"}  # same content, other key order
    key = parse(a).reject_key
    assert key == parse(b).reject_key == lead_key(a)
    assert key == "sha256:" + hashlib.sha256(canonical_json(a).encode()).hexdigest()
    assert parse({**a, "id": "lead_2"}).reject_key != key
    assert lead_key(lead(id="123")) == "123"


# ----------------------------------------------------------------------------------------------------------------------
# Agreement with the simulator's ground truth, and robustness
# ----------------------------------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
ids = st.one_of(json_values, st.sampled_from(["900000000000001", "", "lead_1", "１２３"]))
times = st.one_of(json_values, st.sampled_from(["2026-06-01T12:34:56+0000", "2026-06-01T12:34:56Z",
                                                "2026-06-01T12:34:56.5-0330", "2026-06-01 12:34:56"]))
answer_values = st.lists(st.one_of(json_values, st.sampled_from(
    ["ayse@example.com", " A@B.co ", "ayse@gmail", "0532 123 45 67", "+90 532 123 45 67", "12345", ""])),
    max_size=3)
answer_values = st.lists(st.one_of(answer_values.flatmap(lambda v: st.sampled_from(v or [""])), st.sampled_from(
    ["7467941176", "015065 527172", "5321234567", "ayse @gmail.com", "a@@b.co", "x@y,com", "Germany", "UK",
     "Türkiye", "de", "Mars", " "])), max_size=3)
entries = st.one_of(
    st.fixed_dictionaries({"name": st.sampled_from(["email", "work_email", "phone_number", "work_phone_number",
                                                    "full_name", "city", "country", "q?"]), "values": answer_values}),
    json_values,
)
field_datas = st.one_of(json_values, st.lists(entries, max_size=4))
leads_strategy = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={"id": ids, "created_time": times, "field_data": field_datas,
                                        "form_id": json_values, "ad_id": json_values, "is_organic": json_values,
                                        "platform": json_values, "custom_disclaimer_responses": json_values}),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=leads_strategy)
def test_never_raises_and_always_answers(raw):
    snapshot = copy.deepcopy(raw)
    result = parse(raw)
    assert isinstance(result, (ParsedLead, Rejection))
    if isinstance(result, Rejection):
        assert result.reason in REASONS and result.detail and result.reject_key
    else:
        reachable = bool(result.email or result.phone)
        assert (result.status, result.status_reason) == (("new", None) if reachable else ("rejected",
                                                                                          "no valid contact"))
        assert result.email_raw is None or (result.email is None and result.email_raw.strip())
        assert result.phone_raw is None or (result.phone is None and result.phone_raw.strip())
        assert result.created_time.tzinfo is not None
        json.dumps(result.custom_fields)  # storable
    assert repr(raw) == repr(snapshot)  # the input is not modified


class _EveryForm(dict):
    """``form_locales`` giving every form the same locale (whatever form id the generated lead names)."""

    def __init__(self, locale):
        super().__init__(F=locale)
        self.locale = locale

    def get(self, key, default=None):
        return self.locale


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=leads_strategy, region=st.sampled_from(["TR", "DE", "GB", "US"]),
       locale=st.sampled_from([None, "en_US", "en_GB", "de_DE", "tr_TR", "ar_AR", "es_LA", "xx", "de-at"]))
def test_agrees_with_simulator_ground_truth(raw, region, locale):
    """Quarantine reason, status and both contact columns: the simulator's rule set, written on its own."""
    from leads_pipeline.simulator import validation

    result = parse_lead(raw, distributor="d", page_id="1", default_region=region, form_id="F",
                        form_locales=_EveryForm(locale) if locale else None)
    expected = validation.classify_lead(raw, region, locale)
    if isinstance(result, Rejection):
        assert result.reason == expected
    else:
        assert expected is None
        email, phone = validation.contacts(raw, region, locale)
        assert (result.email, result.phone) == (email, phone)
        assert (result.status, result.status_reason) == validation.lead_status(raw, region, locale)


def test_parse_leads_normalises_every_spelling_of_a_batch():
    """A batch of leads with mixed phone spellings: every lead parsed, each phone the same E.164 number however it
    was typed, each email trimmed and lower-cased. (Throughput is measured by `make bench`, not here.)"""
    import random

    rng = random.Random(7)
    spellings = ["0532 {a} {b} {c}", "+90 532 {a} {b}{c}", "0532{a}{b}{c}", "+90532{a}{b}{c}", "(0532) {a}-{b}-{c}"]
    raws, expected = [], {}
    for i in range(5_000):
        a, b, c = f"{rng.randrange(100, 999)}", f"{rng.randrange(10, 99)}", f"{rng.randrange(10, 99)}"
        lead_id = str(900000000000000 + i)
        expected[lead_id] = (f"+90532{a}{b}{c}", f"user{i}@example.com")
        raws.append({
            "id": lead_id, "created_time": f"2026-06-01T12:{i // 60 % 60:02d}:{i % 60:02d}+0000",
            "ad_id": "1", "form_id": "2", "is_organic": False, "platform": "fb",
            "field_data": [{"name": "full_name", "values": ["Ayşe Yılmaz"]},
                           {"name": "email", "values": [f" User{i}@Example.com"]},
                           {"name": "phone_number", "values": [rng.choice(spellings).format(a=a, b=b, c=c)]},
                           {"name": "treatment_of_interest", "values": ["FUE", "PRP"]}],
            "custom_disclaimer_responses": [{"checkbox_key": "optional_1", "is_checked": "1"}],
        })
    parsed, rejected = parse_leads(raws, distributor="d", page_id="1", default_region="TR")
    assert not rejected and len(parsed) == len(raws)
    assert {p.meta_lead_id: (p.phone, p.email) for p in parsed} == expected
