"""The simulated Meta world: app, user, pages, forms, ads, leads — and the clock that makes leads visible.

Leads are kept per form (and per ad) in ascending ``sk`` order, where ``sk = created_time << 32 | key`` (``key`` is a
unique internal sequence number, so leads without an id still have a stable position). A lead is visible when
``created_time <= now``; the visible leads of a form are a prefix of its list, so paging is a couple of bisects.
"""

from __future__ import annotations

import gc
import json
import random
import string
import threading
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

from leads_pipeline.simulator import data as D
from leads_pipeline.simulator.capi import Datasets
from leads_pipeline.simulator.scenario import Scenario
from leads_pipeline.simulator.validation import classify_lead, lead_status

SK_BITS = 32
SK_MASK = (1 << SK_BITS) - 1

LEAD_FIELDS_ORDER = ("id", "created_time", "ad_id", "ad_name", "adset_id", "adset_name", "campaign_id",
                     "campaign_name", "form_id", "is_organic", "platform", "field_data", "custom_disclaimer_responses")
DEFAULT_LEAD_FIELDS = ("created_time", "id", "field_data")

# Kinds of generated record that are leads nobody can reach: stored with status 'rejected' (docs/lead-validation.md).
UNREACHABLE_KINDS = ("all_values_empty", "invalid_email_no_phone")

_LOCALES = {"TR": "tr_TR", "DE": "de_DE", "GB": "en_GB", "US": "en_US", "NL": "nl_NL", "FR": "fr_FR", "RU": "ru_RU"}


def iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(ts))


class Lead:
    __slots__ = ("key", "ct", "sk", "id", "form", "ad", "obj", "reason", "organic", "cache", "kind", "status_reason")

    def __init__(self, key: int, ct: int, form: Form, ad: Ad | None, obj: dict, reason: str | None, kind: str | None,
                 status_reason: str | None = None):
        self.key = key
        self.ct = ct
        self.sk = (ct << SK_BITS) | key
        wire_id = obj.get("id")
        self.id = wire_id if isinstance(wire_id, str) and wire_id != "" else None
        self.form = form
        self.ad = ad
        self.obj = obj
        self.reason = reason  # quarantine reason (not a lead), or None
        self.status_reason = status_reason  # 'no valid contact' for a lead stored with status 'rejected'
        self.organic = ad is None
        self.kind = kind
        self.cache: dict[tuple, str] = {}

    def json_for(self, fields: tuple[str, ...]) -> str:
        """This lead's JSON restricted to ``fields`` (pre-serialised once per field set)."""
        cached = self.cache.get(fields)
        if cached is None:
            obj = self.obj
            cached = json.dumps({f: obj[f] for f in fields if f in obj}, separators=(",", ":"))
            self.cache[fields] = cached
        return cached


@dataclass(eq=False)
class Page:
    idx: int
    id: str
    name: str
    access_token: str
    region: str
    category: str = "Medical & Health"
    forms: list[Form] = field(default_factory=list)
    ads: list[Ad] = field(default_factory=list)
    installed_fields: list[str] | None = None  # subscribed_apps of our app (None = not installed)


@dataclass(eq=False)
class Form:
    idx: int
    id: str
    name: str
    page: Page
    template: dict
    created_time: int
    locale: str
    status: str = "ACTIVE"
    ads: list[Ad] = field(default_factory=list)
    leads: list[Lead] = field(default_factory=list)
    sks: list[int] = field(default_factory=list)
    organic_prefix: list[int] = field(default_factory=lambda: [0])

    def add(self, lead: Lead) -> None:
        self.leads.append(lead)
        self.sks.append(lead.sk)
        self.organic_prefix.append(self.organic_prefix[-1] + (1 if lead.organic else 0))

    def questions_json(self) -> list[dict]:
        out = []
        for i, (key, label, qtype, options, _multi) in enumerate(self.template["questions"]):
            q: dict[str, Any] = {"key": key, "label": label, "type": qtype, "id": f"{self.id[:9]}{i:06d}"}
            if options is not None:
                opts = _month_options(self.created_time) if options == "MONTHS" else options
                q["options"] = [{"key": o.lower().replace(" ", "_"), "value": o} for o in opts]
            out.append(q)
        return out


@dataclass(eq=False)
class Ad:
    id: str
    name: str
    adset_id: str
    adset_name: str
    campaign_id: str
    campaign_name: str
    form: Form
    page: Page
    created_time: int
    leads: list[Lead] = field(default_factory=list)
    sks: list[int] = field(default_factory=list)

    def add(self, lead: Lead) -> None:
        self.leads.append(lead)
        self.sks.append(lead.sk)


def _month_options(start: int) -> list[str]:
    tm = time.gmtime(start)
    key = (tm.tm_year, tm.tm_mon)
    cached = _MONTHS_CACHE.get(key)
    if cached is None:
        cached = _MONTHS_CACHE[key] = _month_options_uncached(tm)
    return list(cached)


_MONTHS_CACHE: dict[tuple[int, int], list[str]] = {}


def _month_options_uncached(tm: time.struct_time) -> list[str]:
    out = []
    for k in range(1, 7):
        m = (tm.tm_mon - 1 + k) % 12
        y = tm.tm_year + (tm.tm_mon - 1 + k) // 12
        out.append(f"{D.MONTHS[m]} {y}")
    return out + ["Not sure yet"]


class _Ids:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def new(self, digits: int) -> str:
        while True:
            s = str(self.rng.randrange(10 ** (digits - 1), 10 ** digits))
            if s not in self.used:
                self.used.add(s)
                return s


_ALNUM = string.ascii_letters + string.digits


def _token(rng: random.Random, prefix: str, n: int) -> str:
    return prefix + "".join(rng.choices(_ALNUM, k=n))


@dataclass
class TokenInfo:
    token: str
    kind: str  # "user" | "page" | "app"
    page: Page | None = None
    issued_at: int = 0
    expires_at: int = 0  # 0 = never


class World:
    """Everything the Graph API can show. Thread-safe for concurrent reads while ``advance`` appends."""

    def __init__(self, scenario: Scenario):
        gc_was_enabled = gc.isenabled()
        gc.disable()  # generation allocates ~30 objects per lead and frees none: cyclic GC passes only cost time
        try:
            self._build(scenario)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _build(self, scenario: Scenario) -> None:
        self.scenario = sc = scenario
        self.lock = threading.RLock()
        rng = random.Random(f"{sc.seed}:world")
        self._ids = _Ids(random.Random(f"{sc.seed}:ids"))
        tok_rng = random.Random(f"{sc.seed}:tokens")

        self.app_id = self._ids.new(15)
        self.app_secret = "".join(tok_rng.choices("0123456789abcdef", k=32))
        self.app_name = "Lead Sync Sandbox"
        self.user_id = self._ids.new(17)
        self.user_name = "Sandbox Admin"
        self.user_token = _token(tok_rng, "EAAG", 180)
        # The world's start: the scenario's fixed moment, or the wall clock now (an anchored world, see Scenario).
        self.start_time = start = int(time.time()) if sc.start_time is None else int(sc.start_time)
        self.now = start
        self.tokens: dict[str, TokenInfo] = {
            self.user_token: TokenInfo(self.user_token, "user", issued_at=start - 3600),
        }
        self._tok_rng = tok_rng
        self.app_token = f"{self.app_id}|{self.app_secret}"

        self.pages: list[Page] = []
        self.forms: list[Form] = []
        self.ads: list[Ad] = []
        self.objects: dict[str, Any] = {}
        self.leads_by_id: dict[str, Lead] = {}
        self.app_subscriptions: dict[str, dict] = {}  # object -> {"callback_url","fields","verify_token","active"}

        history = int(sc.history_days * 86400)
        for p in range(sc.pages):
            name = D.PAGE_NAMES[p % len(D.PAGE_NAMES)]
            if p >= len(D.PAGE_NAMES):
                name = f"{name} {p // len(D.PAGE_NAMES) + 1}"
            page = Page(p, self._ids.new(15), name, _token(tok_rng, "EAAG", 180), sc.region_for_page(p))
            self.tokens[page.access_token] = TokenInfo(page.access_token, "page", page, issued_at=start - 3600)
            self.pages.append(page)
            self.objects[page.id] = page
            campaigns = [(self._ids.new(17), f"{page.name} – {label}") for label in ("Prospecting", "Retargeting")]
            for f in range(sc.forms_per_page):
                gidx = len(self.forms)
                template = D.TEMPLATES[gidx % len(D.TEMPLATES)]
                fname = template["name"]
                if gidx >= len(D.TEMPLATES):
                    fname = f"{fname} #{gidx // len(D.TEMPLATES) + 1}"
                created = start - history - rng.randint(86400, 60 * 86400)
                form = Form(gidx, self._ids.new(rng.choice((15, 16))), fname, page, template, created,
                            _LOCALES.get(page.region, "en_US"))
                page.forms.append(form)
                self.forms.append(form)
                self.objects[form.id] = form
                for a in range(sc.ads_per_form):
                    camp_id, camp_name = campaigns[a % len(campaigns)]
                    short = template["name"].split(" – ")[0]
                    ad = Ad(self._ids.new(17), f"{short} – creative {chr(65 + a)}", self._ids.new(17),
                            f"{short} – {('TR 25-55', 'EU 30-60', 'GCC 25-50', 'UK 35+')[a % 4]}", camp_id, camp_name,
                            form, page, created + rng.randint(0, 86400))
                    form.ads.append(ad)
                    page.ads.append(ad)
                    self.ads.append(ad)
                    self.objects[ad.id] = ad

        # Initial leads (created before the start), then the timeline (after it).
        self._lead_rng = random.Random(f"{sc.seed}:leads")
        self._persons: list[tuple[D.Person, int]] = []
        self._key = 0
        for form in self.forms:
            n = sc.leads_for_form(form.idx)
            cts = sorted(start - 1 - int(self._lead_rng.random() * history) for _ in range(n))
            for ct in cts:
                self._new_lead(self._lead_rng, form, ct)
        self._tl_rng = random.Random(f"{sc.seed}:timeline")
        self._timeline: list[Lead] = []
        self._tl_visible = 0
        self._tl_ct = start
        self._tl_t = float(start)
        if sc.extra_leads:
            self._extend_timeline(count=sc.extra_leads)

        # Conversions API datasets: one per page (its CRM dataset), from a random stream of their own so that every
        # other id of the world stays what it was before datasets existed.
        self.datasets = Datasets(sc.seed, self._ids.used)
        for page in self.pages:
            self.datasets.create(f"{page.name} CRM", page.id, created_by="scenario")

    # ------------------------------------------------------------------------------------------------------ leads --

    def _new_lead(self, rng: random.Random, form: Form, ct: int) -> Lead:
        sc = self.scenario
        kind = rng.choice(sc.malformed_kinds) if sc.malformed_kinds and rng.random() < sc.malformed_rate else None
        organic = rng.random() < sc.organic_rate or not form.ads
        ad = None if organic else rng.choice(form.ads)
        obj = self._lead_obj(rng, form, ad, ct, kind)
        # Leads generated without a kind are reachable by construction (one contact answer at most is typed wrong,
        # and the phone is verified in the page's region, which the rule always tries): not classified, for speed.
        reason = status_reason = None
        if kind in UNREACHABLE_KINDS:
            reason = classify_lead(obj, form.page.region, form.locale)
            status_reason = lead_status(obj, form.page.region, form.locale)[1]
            if reason is not None or status_reason is None:  # pragma: no cover - a generator bug, never expected
                raise AssertionError(f"kind {kind} produced {reason or 'a reachable lead'}")
        elif kind:
            reason = classify_lead(obj, form.page.region, form.locale)
            if reason is None:  # pragma: no cover - a generator bug, never expected
                raise AssertionError(f"malformed kind {kind} produced a lead")
        self._key += 1
        lead = Lead(self._key, ct, form, ad, obj, reason, kind, status_reason)
        form.add(lead)
        if ad is not None:
            ad.add(lead)
        if lead.id is not None:
            self.leads_by_id[lead.id] = lead
        return lead

    def _person_for(self, rng: random.Random, form: Form) -> D.Person:
        sc = self.scenario
        if self._persons and rng.random() < sc.same_person_rate:
            for _ in range(4):
                person, last_form = self._persons[rng.randrange(len(self._persons))]
                if last_form != form.idx:
                    return person
        person = D.make_person(rng)
        self._persons.append((person, form.idx))
        return person

    def _lead_obj(self, rng: random.Random, form: Form, ad: Ad | None, ct: int, kind: str | None) -> dict:
        region = form.page.region
        person = self._person_for(rng, form)
        # Which contact answers are usable (valid leads can carry one unusable contact field).
        bad_email = bad_phone = False
        if kind is None and rng.random() < self.scenario.invalid_contact_rate:
            if rng.random() < 0.5:
                bad_email = True
            else:
                bad_phone = True
        if kind == "invalid_email_no_phone":
            bad_email = True
        field_data: list[dict] = []
        for key, _label, qtype, options, multi in form.template["questions"]:
            if qtype == "FULL_NAME":
                values = [D.full_name_as_typed(rng, person)]
            elif qtype == "FIRST_NAME":
                values = [person.first]
            elif qtype == "LAST_NAME":
                values = [person.last]
            elif qtype in ("EMAIL", "WORK_EMAIL"):
                values = [D.invalid_email(rng, person, unusable=kind is not None) if bad_email
                          else D.typed_email(rng, person.email)]
            elif qtype in ("PHONE", "WORK_PHONE_NUMBER"):
                if kind == "invalid_email_no_phone":
                    if rng.random() < 0.5:
                        continue  # the question is simply not in field_data
                    values = [""]
                elif bad_phone:
                    values = [D.invalid_phone(rng, region)]
                else:
                    values = [D.typed_phone(rng, person.phone, region)]
            elif qtype == "CITY":
                values = [person.city]
            elif qtype == "COUNTRY":
                values = [person.country]
            elif qtype == "COMPANY_NAME":
                values = [rng.choice(D.COMPANIES)]
            elif qtype == "JOB_TITLE":
                values = [rng.choice(D.JOB_TITLES)]
            else:
                opts = _month_options(ct) if options == "MONTHS" else list(options or ("Yes", "No"))
                if multi:
                    k = 1 if rng.random() < 0.55 else (2 if rng.random() < 0.7 else 3)
                    values = rng.sample(opts, min(k, len(opts)))
                else:
                    values = [rng.choice(opts)]
            field_data.append({"name": key, "values": values})

        lead_id = self._ids.new(16)
        obj: dict[str, Any] = {"id": lead_id, "created_time": iso(ct)}
        if ad is not None:
            obj.update(ad_id=ad.id, ad_name=ad.name, adset_id=ad.adset_id, adset_name=ad.adset_name,
                       campaign_id=ad.campaign_id, campaign_name=ad.campaign_name)
        obj["form_id"] = form.id
        obj["is_organic"] = ad is None
        obj["platform"] = "ig" if rng.random() < self.scenario.ig_rate else "fb"
        obj["field_data"] = field_data
        if form.template["disclaimers"]:
            obj["custom_disclaimer_responses"] = [
                {"checkbox_key": key, "is_checked": "1" if rng.random() < 0.7 else ""}
                for key, _label in form.template["disclaimers"]
            ]

        if kind == "missing_id":
            r = rng.random()
            if r < 0.7:
                del obj["id"]
            else:
                obj["id"] = None if r < 0.85 else ""
        elif kind == "non_digit_id":
            obj["id"] = rng.choice((f"lead_{lead_id}", lead_id[:-2] + "ab", f"{lead_id}-1", "L" + lead_id[1:],
                                    f"{lead_id[:8]} {lead_id[8:]}"))
        elif kind == "bad_created_time":
            good = obj["created_time"]
            choice = rng.randrange(6)
            if choice == 5:
                del obj["created_time"]
            else:
                obj["created_time"] = (good[:10] + " " + good[11:19], str(ct), good[:19], time.strftime(
                    "%d/%m/%Y %H:%M", time.gmtime(ct)), "")[choice]
        elif kind == "field_data_null":
            r = rng.random()
            if r < 0.6:
                obj["field_data"] = None
            elif r < 0.8:
                obj["field_data"] = {e["name"]: e["values"][0] if e["values"] else "" for e in field_data}
            else:
                field_data[0] = {"name": field_data[0]["name"], "values": field_data[0]["values"][0]}
        elif kind == "all_values_empty":
            for e in field_data:
                e["values"] = [""] if rng.random() < 0.8 else []
        return obj

    def _extend_timeline(self, count: int | None = None, until_ct: int | None = None) -> None:
        """Generate more timeline leads (all of ``extra_leads`` at once; lazily when the timeline is endless)."""
        sc = self.scenario
        limit = sc.extra_leads
        rate_per_s = sc.arrival_rate / 60.0
        while True:
            if limit is not None and len(self._timeline) >= limit:
                return
            if count is not None and len(self._timeline) >= count:
                return
            if until_ct is not None and self._tl_ct > until_ct:
                return
            if count is None and until_ct is None:
                return
            self._tl_t += self._tl_rng.expovariate(rate_per_s)
            ct = int(self._tl_t)
            if ct <= self._tl_ct and (sc.arrival_rate <= 60 or ct < self._tl_ct):
                ct = self._tl_ct + 1  # one lead per simulated second at most (unless the rate needs more)
            form = self.forms[self._tl_rng.randrange(len(self.forms))]
            lead = self._new_lead(self._tl_rng, form, ct)
            self._timeline.append(lead)
            self._tl_ct = ct

    def advance(self, seconds: float | None = None, leads: int | None = None) -> list[Lead]:
        """Move the clock; returns the leads that became visible (oldest first)."""
        with self.lock:
            target = self.now
            if leads is not None and leads > 0:
                want = self._tl_visible + int(leads)
                if self.scenario.extra_leads is None:
                    self._extend_timeline(count=want)
                idx = min(want, len(self._timeline)) - 1
                if idx >= self._tl_visible:
                    target = max(target, self._timeline[idx].ct)
            if seconds is not None and seconds > 0:
                target = max(target, self.now + int(seconds))
            if self.scenario.extra_leads is None:
                self._extend_timeline(until_ct=target + 1)
            self.now = target
            start = self._tl_visible
            end = start
            while end < len(self._timeline) and self._timeline[end].ct <= target:
                end += 1
            self._tl_visible = end
            return self._timeline[start:end]

    def set_now(self, now: int) -> list[Lead]:
        return self.advance(seconds=max(0, now - self.now))

    # ---------------------------------------------------------------------------------------------------- queries --

    def visible_hi(self, sks: list[int]) -> int:
        return bisect_right(sks, (self.now << SK_BITS) | SK_MASK)

    def lead_created(self, lead_id: str) -> int | None:
        """The created time of a lead the world has shown (Conversions API: a lead id Meta knows), else None."""
        lead = self.visible_lead(lead_id)
        return None if lead is None else lead.ct

    def visible_lead(self, lead_id: str) -> Lead | None:
        lead = self.leads_by_id.get(lead_id)
        if lead is None or lead.ct > self.now:
            return None
        return lead

    def form_counts(self, form: Form) -> tuple[int, int]:
        hi = self.visible_hi(form.sks)
        return hi, form.organic_prefix[hi]

    def mint_long_lived_user_token(self) -> str:
        with self.lock:
            token = _token(self._tok_rng, "EAAG", 190)
            self.tokens[token] = TokenInfo(token, "user", issued_at=self.now, expires_at=self.now + 5183944)
            return token

    def manifest(self) -> dict[str, Any]:
        """Credentials and the ground truth of every visible lead, per form, newest first: ``valid_lead_ids`` are
        the leads (rows of ``leads``), ``no_contact_lead_ids`` those of them stored with status 'rejected' (no valid
        contact), ``malformed*`` the records quarantined in ``rejected_leads`` (with their reasons)."""
        with self.lock:
            pages = []
            for page in self.pages:
                forms = []
                for form in page.forms:
                    hi = self.visible_hi(form.sks)
                    valid, bad_ids, without, malformed, unreachable = [], [], 0, [], []
                    for lead in reversed(form.leads[:hi]):
                        if lead.reason is None:
                            valid.append(lead.id)
                            if lead.status_reason is not None:
                                unreachable.append(lead.id)
                        else:
                            malformed.append({"id": lead.id, "reason": lead.reason})
                            if lead.id is None:
                                without += 1
                            else:
                                bad_ids.append(lead.id)
                    forms.append({"id": form.id, "name": form.name, "locale": form.locale, "valid_lead_ids": valid,
                                  "no_contact_lead_ids": unreachable, "malformed_lead_ids": bad_ids,
                                  "malformed_without_id": without, "malformed": malformed})
                dataset = next((d.id for d in self.datasets.by_id.values()
                                if d.page_id == page.id and d.created_by == "scenario"), None)
                pages.append({"id": page.id, "name": page.name, "access_token": page.access_token,
                              "default_region": page.region, "capi_dataset_id": dataset, "forms": forms})
            return {"app_id": self.app_id, "app_secret": self.app_secret, "user_token": self.user_token,
                    "user_id": self.user_id, "api_version": self.scenario.api_version, "pages": pages,
                    "now": self.now, "datasets": self.datasets.summaries(events=True)}
