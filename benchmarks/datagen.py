"""Deterministic benchmark data: Graph-API-shaped lead pages, one JSON page per line.

The shape of ``/work/shared/reference/performance-anchors.md``: pages of 100 leads
(``{"data": [...], "paging": {...}}``), about 5% duplicate leads re-emitted (byte for byte) on later pages, about 1%
malformed records (missing id, non-digit id, bad created_time, field_data null, invalid email and no phone, empty
values). Phones and emails mostly as Meta's prefill delivers them (E.164, lower-case), a share typed by hand
(``0532 123 45 67``, ``+90 (532) 123-45-67``, ``Ayse.Yilmaz@Gmail.com ``…), a few unusable answers next to a usable
one. Names, forms and questions come from the simulator's embedded data (six medical-tourism forms).

Every phone answer is either a valid mobile or clearly not a number (fewer than 8 digits), and every email either
valid or clearly invalid, so a SQL-only baseline with simple rules reaches the same verdicts as the parser.

    python -m benchmarks.datagen 100000          # → data/bench/pages-100000-s1.jsonl (cached)
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = Path(os.environ.get("LEADS_BENCH_CACHE", ROOT / "data" / "bench"))
GENERATOR_VERSION = 3
PAGE_SIZE = 100
DUPLICATE_RATE = 0.05
MALFORMED_RATE = 0.01
MALFORMED_KINDS = ("missing_id", "bad_id", "bad_created_time", "field_data_null", "invalid_email_no_phone",
                   "empty_values")
REGION = "TR"  # the benchmark distributor's default phone region
START = 1_780_000_000  # 2026-05-28
DISTRIBUTOR = "bench"


def data_path(n: int, seed: int = 1, kind: str = "pages") -> Path:
    return CACHE_DIR / f"{kind}-{n}-s{seed}-v{GENERATOR_VERSION}.jsonl"


def ensure(n: int, seed: int = 1) -> tuple[Path, dict]:
    """The cached file of ``n`` raw leads (generated on first use) and its summary."""
    path = data_path(n, seed)
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        return path, json.loads(meta_path.read_text())
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    t0 = time.perf_counter()
    meta = generate(n, seed, tmp)
    meta["generation_seconds"] = round(time.perf_counter() - t0, 2)
    os.replace(tmp, path)
    meta_path.write_text(json.dumps(meta, indent=2))
    return path, meta


class _People:
    """A pool of people with their answers as the prefill gives them and as typed by hand."""

    def __init__(self, rng: random.Random, size: int = 6000):
        from leads_pipeline.simulator import data as D

        self.items = []
        for _ in range(size):
            p = D.make_person(rng)
            e164 = "+" + str(p.phone.country_code) + str(p.phone.national_number)
            typed = D.typed_phone(rng, p.phone, REGION)
            self.items.append({
                "full": f"{p.first} {p.last}", "first": p.first, "last": p.last, "full_typed": D.full_name_as_typed(rng, p),
                "email": p.email, "email_typed": D.typed_email(rng, p.email), "email_bad": D.invalid_email(rng, p),
                "phone": e164, "phone_typed": typed, "phone_bad": D.invalid_phone(rng, REGION),
                "city": p.city, "country": p.country,
            })


def _forms(rng: random.Random):
    from leads_pipeline.simulator import data as D

    forms = []
    for i, template in enumerate(D.TEMPLATES):
        form_id = str(333_333_333_333_300 + i)
        ads = []
        for a in range(2):
            campaign = str(120_210_000_000_000_000 + i * 10 + a)
            ads.append({"ad_id": str(120_200_000_000_000_000 + i * 10 + a), "ad_name": f"{template['name'][:20]} – ad {a + 1}",
                        "adset_id": str(120_205_000_000_000_000 + i * 10 + a), "adset_name": f"Adset {i}.{a}",
                        "campaign_id": campaign, "campaign_name": f"Campaign {i}.{a} – {template['name'][:16]}"})
        forms.append({"id": form_id, "template": template, "ads": ads})
    return forms


def _answer(rng: random.Random, key: str, options, multi: bool) -> list[str]:
    from leads_pipeline.simulator import data as D

    if options == "MONTHS":
        return [f"{rng.choice(D.MONTHS)} 2026"]
    if options is None:
        if key == "company_name":
            return [rng.choice(D.COMPANIES)]
        if key == "job_title":
            return [rng.choice(D.JOB_TITLES)]
        return ["ok"]
    if multi:
        k = 1 + (rng.random() < 0.35) + (rng.random() < 0.1)
        return rng.sample(list(options), min(k, len(options)))
    return [rng.choice(options)]


def _lead(rng: random.Random, i: int, people: _People, forms, kind: str | None) -> dict:
    form = forms[i % len(forms) if rng.random() < 0.5 else rng.randrange(len(forms))]
    person = people.items[rng.randrange(len(people.items))]
    ct = START + i * 3 + rng.randrange(3)
    lead: dict = {"id": str(900_000_000_000_000 + i),
                  "created_time": time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(ct))}
    organic = rng.random() < 0.1
    if not organic:
        lead.update(form["ads"][rng.randrange(2)])
    lead["form_id"] = form["id"]
    lead["is_organic"] = organic
    lead["platform"] = "ig" if rng.random() < 0.4 else "fb"
    # Contact answers: mostly as the prefill delivers them, some typed by hand, a few unusable next to a usable one.
    r = rng.random()
    email = person["email"] if r < 0.85 else (person["email_typed"] if r < 0.98 else person["email_bad"])
    r = rng.random()
    phone = person["phone"] if r < 0.84 else (person["phone_typed"] if r < 0.99 else person["phone_bad"])
    if email == person["email_bad"] and phone == person["phone_bad"]:
        phone = person["phone"]  # one usable answer at least: a valid lead
    fd = []
    for key, _label, _qtype, options, multi in form["template"]["questions"]:
        if key == "full_name":
            values = [person["full"] if rng.random() < 0.9 else person["full_typed"]]
        elif key == "first_name":
            values = [person["first"]]
        elif key == "last_name":
            values = [person["last"]]
        elif key in ("email", "work_email"):
            values = [email]
        elif key in ("phone_number", "work_phone_number"):
            values = [phone]
        elif key == "city":
            values = [person["city"]]
        elif key == "country":
            values = [person["country"]]
        else:
            values = _answer(rng, key, options, multi)
        fd.append({"name": key, "values": values})
    lead["field_data"] = fd
    lead["custom_disclaimer_responses"] = [{"checkbox_key": k, "is_checked": "1" if rng.random() < 0.7 else ""}
                                           for k, _ in form["template"]["disclaimers"]]
    if kind == "missing_id":
        del lead["id"]
    elif kind == "bad_id":
        lead["id"] = f"lead_{i}"
    elif kind == "bad_created_time":
        lead["created_time"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ct))
    elif kind == "field_data_null":
        lead["field_data"] = None
    elif kind == "invalid_email_no_phone":
        lead["field_data"] = [e for e in fd if e["name"] not in ("phone_number", "work_phone_number")]
        for e in lead["field_data"]:
            if e["name"] in ("email", "work_email"):
                e["values"] = [person["email_bad"]]
    elif kind == "empty_values":
        lead["field_data"] = [{"name": e["name"], "values": [""]} for e in fd]
    return lead


def generate(n: int, seed: int, out: Path) -> dict:
    """Write ``n`` raw leads (duplicates and malformed ones included) as pages of 100, one JSON page per line."""
    rng = random.Random(f"bench:{seed}")
    people = _People(random.Random(f"bench-people:{seed}"))
    forms = _forms(rng)
    previous: list[str] = []  # texts of leads on earlier pages (re-emitted as duplicates)
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    counts = {"raw": 0, "duplicates": 0, "malformed": 0, "pages": 0}
    by_kind = dict.fromkeys(MALFORMED_KINDS, 0)
    next_id = 0
    digest = hashlib.sha256()
    with open(out, "w", encoding="utf-8") as f:
        while counts["raw"] < n:
            size = min(PAGE_SIZE, n - counts["raw"])
            texts = []
            for _ in range(size):
                if previous and rng.random() < DUPLICATE_RATE:
                    texts.append(previous[rng.randrange(max(0, len(previous) - 20_000), len(previous))])
                    counts["duplicates"] += 1
                    continue
                kind = None
                if rng.random() < MALFORMED_RATE:
                    kind = MALFORMED_KINDS[counts["malformed"] % len(MALFORMED_KINDS)]
                    counts["malformed"] += 1
                    by_kind[kind] += 1
                texts.append(dumps(_lead(rng, next_id, people, forms, kind)))
                next_id += 1
            counts["raw"] += size
            counts["pages"] += 1
            page_no = counts["pages"]
            paging = {"cursors": {"before": f"QVFI{page_no:08d}Qg", "after": f"QVFI{page_no + 1:08d}Qg"}}
            if counts["raw"] < n:
                paging["next"] = (f"https://graph.facebook.com/v25.0/{forms[0]['id']}/leads?fields=id%2Ccreated_time"
                                  f"%2Cfield_data&limit={PAGE_SIZE}&after={paging['cursors']['after']}")
            line = '{"data":[' + ",".join(texts) + '],"paging":' + dumps(paging) + "}\n"
            digest.update(line.encode())
            f.write(line)
            previous.extend(texts)
            if len(previous) > 40_000:
                del previous[:20_000]
    return {"raw_leads": n, "distinct_generated": next_id, **counts, "malformed_by_kind": by_kind,
            "sha256": digest.hexdigest(), "region": REGION, "generator_version": GENERATOR_VERSION, "seed": seed}


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    path, summary = ensure(size)
    print(path)
    print(json.dumps(summary, indent=2))
