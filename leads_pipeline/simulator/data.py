"""Embedded, deterministic test data: names, e-mails, phone numbers as people type them, form templates.

Everything here is driven by a ``random.Random`` passed in by the caller, so the same seed gives the same world.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberFormat
from phonenumbers.phonemetadata import PhoneMetadata

from leads_pipeline.simulator.validation import email_is_valid, phone_is_valid

# --------------------------------------------------------------------------------------------------------------------
# Names by culture: (weight, first names, last names, phone regions, e-mail domains, cities, country answer)
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Culture:
    name: str
    weight: float
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    phone_regions: tuple[str, ...]
    domains: tuple[str, ...]
    cities: tuple[str, ...]
    country: str


CULTURES: tuple[Culture, ...] = (
    Culture(
        "turkish", 0.52,
        ("Ayşe", "Fatma", "Emine", "Hatice", "Zeynep", "Elif", "Özge", "Çağla", "Gülşen", "Şeyma", "Büşra", "Işıl",
         "Ilgın", "Gökçe", "Öykü", "Nilüfer", "Sevgi", "Dilek", "Mehmet", "Mustafa", "Ahmet", "Ali", "Hüseyin",
         "İbrahim", "İsmail", "Ömer", "Şükrü", "Çağrı", "Uğur", "Ümit", "Oğuz", "Doğan", "Barış", "Gökhan", "Tolga",
         "Serkan", "Kübra", "Yağmur", "İlker", "Ilgaz"),
        ("Yılmaz", "Kaya", "Demir", "Şahin", "Çelik", "Yıldız", "Yıldırım", "Öztürk", "Aydın", "Özdemir", "Arslan",
         "Doğan", "Kılıç", "Aslan", "Çetin", "Kara", "Koç", "Kurt", "Özkan", "Şimşek", "Güneş", "Erdoğan", "Ünal",
         "İnce", "Uçar", "Akgül", "Güler", "Bozkurt", "Ağaoğlu", "Karakuş", "Türkmen", "Işık", "Çakır", "Sarıgül"),
        ("TR",),
        ("gmail.com", "hotmail.com", "outlook.com", "yahoo.com", "icloud.com", "outlook.com.tr", "yandex.com",
         "windowslive.com"),
        ("İstanbul", "Ankara", "İzmir", "Bursa", "Antalya", "Eskişehir", "Şanlıurfa", "Muğla", "Çanakkale"),
        "Türkiye",
    ),
    Culture(
        "english", 0.12,
        ("Oliver", "Jack", "Harry", "George", "Emily", "Olivia", "Amelia", "Sophie", "Charlotte", "James", "Thomas",
         "Jessica", "Daniel", "Megan", "Liam", "Chloe"),
        ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright",
         "Thompson", "Evans", "Walker", "O'Connor", "White", "Hughes"),
        ("GB", "GB", "US"),
        ("gmail.com", "hotmail.co.uk", "outlook.com", "yahoo.co.uk", "btinternet.com", "icloud.com", "aol.com"),
        ("London", "Manchester", "Birmingham", "Leeds", "Glasgow", "New York", "Boston"),
        "United Kingdom",
    ),
    Culture(
        "german", 0.10,
        ("Jürgen", "Jörg", "Lukas", "Jonas", "Felix", "Maximilian", "Sönke", "Anna", "Lena", "Jülide", "Marie",
         "Sophie", "Käthe", "Günther", "Björn", "Katharina"),
        ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schäfer", "Köhler",
         "Groß", "Krüger", "Hoffmann", "Schröder", "Weiß"),
        ("DE",),
        ("gmail.com", "gmx.de", "web.de", "t-online.de", "outlook.de", "yahoo.de", "posteo.de"),
        ("Berlin", "München", "Köln", "Düsseldorf", "Frankfurt am Main", "Hamburg", "Stuttgart"),
        "Germany",
    ),
    Culture(
        "arabic", 0.10,
        ("Mohammed", "Ahmed", "Abdullah", "Khalid", "Omar", "Yousef", "Fatima", "Aisha", "Mariam", "Noor", "Layla",
         "Hamad", "Saeed", "Rashid", "Huda", "Salma"),
        ("Al-Rashid", "Al Mansoori", "Al-Harbi", "Al Qahtani", "Haddad", "Nasser", "Al-Farsi", "Saleh", "Hassan",
         "Al Zahrani", "Khoury", "Al-Shamsi"),
        ("AE", "AE", "SA"),
        ("gmail.com", "hotmail.com", "outlook.com", "yahoo.com", "icloud.com"),
        ("Dubai", "Abu Dhabi", "Sharjah", "Riyadh", "Jeddah", "Doha"),
        "United Arab Emirates",
    ),
    Culture(
        "russian", 0.08,
        ("Dmitry", "Sergey", "Alexey", "Andrey", "Ivan", "Nikolai", "Svetlana", "Olga", "Natalia", "Ekaterina",
         "Anastasia", "Yulia", "Tatiana", "Mikhail"),
        ("Ivanov", "Smirnov", "Kuznetsov", "Popov", "Vasiliev", "Petrov", "Sokolova", "Mikhailova", "Novikova",
         "Fedorova", "Morozov", "Volkova"),
        ("RU",),
        ("mail.ru", "yandex.ru", "gmail.com", "bk.ru", "inbox.ru", "rambler.ru"),
        ("Moscow", "Saint Petersburg", "Kazan", "Novosibirsk", "Yekaterinburg"),
        "Russia",
    ),
    Culture(
        "dutch_french", 0.08,
        ("Daan", "Sem", "Sanne", "Lotte", "Femke", "Pieter", "Camille", "Léa", "Chloé", "Hugo", "Théo", "Amélie",
         "Noémie", "François"),
        ("de Vries", "van Dijk", "Bakker", "Janssen", "Visser", "Smit", "Dubois", "Lefèvre", "Moreau", "Girard",
         "Bonnet", "Mercier"),
        ("NL", "FR"),
        ("gmail.com", "hotmail.nl", "ziggo.nl", "orange.fr", "free.fr", "outlook.fr", "laposte.net"),
        ("Amsterdam", "Rotterdam", "Utrecht", "Paris", "Lyon", "Marseille"),
        "Netherlands",
    ),
)

_TRANSLIT = {
    "ç": "c", "Ç": "C", "ş": "s", "Ş": "S", "ğ": "g", "Ğ": "G", "ı": "i", "İ": "I", "ö": "o", "Ö": "O", "ü": "u",
    "Ü": "U", "ä": "a", "Ä": "A", "ß": "ss", "é": "e", "è": "e", "ê": "e", "ë": "e", "á": "a", "à": "a", "â": "a",
    "ñ": "n", "ø": "o", "å": "a", "æ": "ae", "œ": "oe",
}
_GERMAN_TRANSLIT = {"ü": "ue", "ö": "oe", "ä": "ae", "Ü": "Ue", "Ö": "Oe", "Ä": "Ae", "ß": "ss"}


def transliterate(text: str, culture: str = "") -> str:
    """ASCII spelling of a name (Turkish letters folded, German umlauts as ue/oe/ae)."""
    table = dict(_TRANSLIT)
    if culture == "german":
        table.update(_GERMAN_TRANSLIT)
    out = "".join(table.get(ch, ch) for ch in text)
    out = unicodedata.normalize("NFKD", out)
    return "".join(ch for ch in out if ord(ch) < 128)


_TOKEN_CACHE: dict[tuple[str, str], str] = {}


def _email_token(text: str, culture: str) -> str:
    key = (text, culture)
    token = _TOKEN_CACHE.get(key)
    if token is None:
        token = "".join(ch for ch in transliterate(text, culture).lower() if ch.isalnum())
        _TOKEN_CACHE[key] = token
    return token


# --------------------------------------------------------------------------------------------------------------------
# Phone numbers
# --------------------------------------------------------------------------------------------------------------------

_EXAMPLE_NSN: dict[str, str] = {}
_MOBILE_RE: dict[str, tuple] = {}


def _example_nsn(region: str) -> str:
    if region not in _EXAMPLE_NSN:
        ex = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
        _EXAMPLE_NSN[region] = str(ex.national_number)
    return _EXAMPLE_NSN[region]


def _is_valid_mobile(region: str, nsn: str) -> bool:
    """Exactly phonenumbers' rule for "valid as a mobile of ``region``" (general + mobile descriptions), with the
    patterns compiled once: a number matching both is ``is_valid_number`` (its type is MOBILE, not UNKNOWN)."""
    entry = _MOBILE_RE.get(region)
    if entry is None:
        md = PhoneMetadata.metadata_for_region(region)
        gen, mob = md.general_desc, md.mobile
        entry = (re.compile(gen.national_number_pattern), tuple(gen.possible_length or ()),
                 re.compile(mob.national_number_pattern), tuple(mob.possible_length or ()))
        _MOBILE_RE[region] = entry
    gen_re, gen_len, mob_re, mob_len = entry
    if (gen_len and len(nsn) not in gen_len) or (mob_len and len(nsn) not in mob_len):
        return False
    return gen_re.fullmatch(nsn) is not None and mob_re.fullmatch(nsn) is not None


_TR_MOBILE_PREFIXES = ("501", "505", "506", "507", "530", "531", "532", "533", "534", "535", "536", "537", "538",
                       "539", "541", "542", "543", "544", "545", "546", "547", "548", "549", "551", "552", "553",
                       "554", "555", "559")


def random_mobile(rng: random.Random, region: str) -> PhoneNumber:
    """A mobile number of ``region`` that ``phonenumbers.is_valid_number`` accepts."""
    cc = phonenumbers.country_code_for_region(region)
    example = _example_nsn(region)
    keep = 2 if len(example) > 8 else 1
    for _ in range(200):
        if region == "TR":
            nsn = rng.choice(_TR_MOBILE_PREFIXES) + str(rng.randint(1000000, 9999999))
        else:
            nsn = example[:keep] + str(rng.randrange(10 ** (len(example) - keep))).zfill(len(example) - keep)
        if _is_valid_mobile(region, nsn):
            return PhoneNumber(country_code=cc, national_number=int(nsn))
    return phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)  # pragma: no cover


def _same_number(a: PhoneNumber, b: PhoneNumber) -> bool:
    return (a.country_code == b.country_code and a.national_number == b.national_number
            and bool(a.italian_leading_zero) == bool(b.italian_leading_zero)
            and (a.number_of_leading_zeros or 1) == (b.number_of_leading_zeros or 1))


_LOCAL_STYLES = ("national", "national", "national_digits", "nsn", "international", "e164", "idd")
_TR_STYLES = ("tr_spaced", "tr_spaced", "tr_plus", "tr_paren", "nsn", "tr_0090", "tr_dashes", "tr_plus_paren",
              "tr_0_spaced", "international", "e164", "national_digits")
_FOREIGN_STYLES = ("international", "international", "e164", "idd", "plus_compact", "idd_compact")


def _render(style: str, num: PhoneNumber, region_of_number: str) -> str:
    nsn, cc = str(num.national_number), str(num.country_code)
    if style == "e164" or style == "plus_compact":
        return "+" + cc + nsn
    if style == "nsn":
        return nsn
    if style.startswith("tr_"):
        a, b, c, d = nsn[:3], nsn[3:6], nsn[6:8], nsn[8:]
        return {"tr_spaced": f"0{a} {b} {c} {d}", "tr_plus": f"+90 {a} {b} {c}{d}", "tr_paren": f"(0{a}) {b}{c}{d}",
                "tr_0090": f"0090{a}{b}{c}{d}", "tr_dashes": f"0{a}-{b}-{c}-{d}",
                "tr_plus_paren": f"+90 ({a}) {b}-{c}-{d}", "tr_0_spaced": f"0 {a} {b} {c} {d}"}[style]
    if style == "idd_compact":
        return "00" + cc + nsn
    intl = phonenumbers.format_number(num, PhoneNumberFormat.INTERNATIONAL)
    if style == "international":
        return intl
    if style == "idd":
        return "00" + cc + " " + (intl.split(" ", 1)[1] if " " in intl else nsn)
    national = phonenumbers.format_number(num, PhoneNumberFormat.NATIONAL)
    if style == "national_digits":
        return "".join(ch for ch in national if ch.isdigit())
    return national


def typed_phone(rng: random.Random, num: PhoneNumber, page_region: str) -> str:
    """How a person would type ``num`` into a form shown with ``page_region``; verified to parse back to ``num``
    (with ``page_region`` as the default region), else the E.164 spelling."""
    number_region = phonenumbers.region_code_for_country_code(num.country_code)
    if number_region == page_region:
        styles = _TR_STYLES if page_region == "TR" else _LOCAL_STYLES
    else:
        styles = _FOREIGN_STYLES
    for _ in range(3):
        style = rng.choice(styles)
        typed = _render(style, num, number_region)
        if style in ("e164", "plus_compact"):
            return typed  # the canonical spelling: always parses back to itself
        try:
            parsed = phonenumbers.parse(typed, page_region)
        except phonenumbers.NumberParseException:
            continue
        if _same_number(parsed, num):
            return typed
    return "+" + str(num.country_code) + str(num.national_number)


_INVALID_PHONES = ("12345", "0532 12", "555", "000000", "+90 123", "1234", "n/a", "0", "99", "+1 555")


def invalid_phone(rng: random.Random, page_region: str) -> str:
    """A typed phone answer that is not a valid number (checked with ``phonenumbers``)."""
    for _ in range(20):
        typed = rng.choice(_INVALID_PHONES)
        if not phone_is_valid(typed, page_region):
            return typed
    return "x"


# --------------------------------------------------------------------------------------------------------------------
# People
# --------------------------------------------------------------------------------------------------------------------


# The country a person answers is the one their phone is from (an English-speaking person with a US mobile lives in
# the United States): the country answer is a signal the phone rule reads (docs/lead-validation.md).
COUNTRY_ANSWERS = {"TR": "Türkiye", "GB": "United Kingdom", "US": "United States", "DE": "Germany",
                   "AE": "United Arab Emirates", "SA": "Saudi Arabia", "RU": "Russia", "NL": "Netherlands",
                   "FR": "France"}


@dataclass
class Person:
    culture: str
    first: str
    last: str
    email: str  # canonical, valid, lower-case ASCII
    phone: PhoneNumber
    city: str
    country: str
    raw_email_local: str  # the local part in the person's own spelling (for typo variants)


def pick_culture(rng: random.Random) -> Culture:
    r = rng.random() * sum(c.weight for c in CULTURES)
    for culture in CULTURES:
        r -= culture.weight
        if r <= 0:
            return culture
    return CULTURES[-1]


def make_person(rng: random.Random, culture: Culture | None = None) -> Person:
    culture = culture or pick_culture(rng)
    first = rng.choice(culture.first_names)
    last = rng.choice(culture.last_names)
    f, lst = _email_token(first, culture.name), _email_token(last, culture.name)
    pattern = rng.randrange(7)
    if pattern == 0:
        local = f"{f}.{lst}"
    elif pattern == 1:
        local = f"{f}{lst}"
    elif pattern == 2:
        local = f"{f}_{lst}"
    elif pattern == 3:
        local = f"{f[0]}{lst}"
    elif pattern == 4:
        local = f"{f}{lst}{rng.randint(1960, 2006)}"
    elif pattern == 5:
        local = f"{f}.{lst}{rng.randint(1, 99)}"
    else:
        local = f"{lst}.{f}"
    email = f"{local}@{rng.choice(culture.domains)}"
    own_local = (first + "." + last).lower().replace(" ", "")
    region = rng.choice(culture.phone_regions)
    phone = random_mobile(rng, region)
    country = COUNTRY_ANSWERS.get(region, culture.country)
    return Person(culture.name, first, last, email, phone, rng.choice(culture.cities), country, own_local)


def typed_email(rng: random.Random, email: str) -> str:
    """The valid address as typed: sometimes Capitalised / UPPER-case domain, sometimes with surrounding spaces."""
    r = rng.random()
    local, domain = email.split("@", 1)
    if r < 0.12:
        typed = local[:1].upper() + local[1:] + "@" + domain[:1].upper() + domain[1:]
    elif r < 0.17:
        typed = email.upper()
    elif r < 0.22:
        typed = ".".join(p[:1].upper() + p[1:] for p in local.split(".")) + "@" + domain
    else:
        typed = email
    s = rng.random()
    if s < 0.06:
        typed = " " + typed
    elif s < 0.12:
        typed = typed + " "
    elif s < 0.14:
        typed = "  " + typed + " "
    return typed


def _clean_as_typed(answer: str) -> bool:
    """Already a clean address once trimmed and lower-cased (no slip to repair): not what ``invalid_email`` is for."""
    s = answer.strip().lower()
    return s.isascii() and re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", s, re.ASCII) is not None


def invalid_email(rng: random.Random, person: Person, unusable: bool = False) -> str:
    """An e-mail answer typed wrong: a slip the rule repairs (a space inside, ``@@``, a comma for a dot) or an
    unusable one (no TLD, no ``@``, the name's own letters); only unusable ones when ``unusable``."""
    local, domain = person.email.split("@", 1)
    candidates = [
        f"{local}@{domain.split('.')[0]}",           # no TLD
        f"{local}.{domain}",                         # no @
        f"{local} @{domain}",                        # space inside (repaired)
        f"{local}@@{domain}",                        # two @ (repaired)
        f"{person.raw_email_local}@{domain}",        # the name with its own letters (ş, ü...) or spaces
        f"{local}@{domain.replace('.', ',')}",       # comma for dot (repaired)
    ]
    rng.shuffle(candidates)
    for cand in candidates:
        if not (email_is_valid(cand) if unusable else _clean_as_typed(cand)):
            return cand
    return local  # pragma: no cover


def full_name_as_typed(rng: random.Random, person: Person) -> str:
    name = f"{person.first} {person.last}"
    r = rng.random()
    if r < 0.06:
        return name.lower() if person.culture != "turkish" else name.replace("I", "ı").replace("İ", "i").lower()
    if r < 0.09:
        return name.replace("i", "İ").replace("ı", "I").upper() if person.culture == "turkish" else name.upper()
    if r < 0.12:
        return " " + name + " "
    return name


# --------------------------------------------------------------------------------------------------------------------
# Form templates (medical tourism)
# --------------------------------------------------------------------------------------------------------------------

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")

# A question: (key, label, type, options or None, multi_select)
Question = tuple[str, str, str, tuple[str, ...] | None, bool]

TEMPLATES: tuple[dict, ...] = (
    {
        "name": "Hair Transplant – Free Online Consultation",
        "questions": [
            ("full_name", "Full name", "FULL_NAME", None, False),
            ("email", "Email", "EMAIL", None, False),
            ("phone_number", "Phone number", "PHONE", None, False),
            ("treatment_of_interest", "Which treatments are you interested in?", "CUSTOM",
             ("FUE Hair Transplant", "DHI Hair Transplant", "Beard Transplant", "Eyebrow Transplant",
              "PRP Therapy"), True),
            ("when_do_you_plan_to_travel?", "When do you plan to travel?", "CUSTOM", "MONTHS", False),
            ("what_is_your_budget?", "What is your budget?", "CUSTOM",
             ("under_€2.000", "€2.000_-_€3.500", "€3.500_-_€5.000", "over_€5.000"), False),
        ],
        "disclaimers": [("optional_1", "I agree to be contacted on WhatsApp")],
    },
    {
        "name": "Dental Holiday – Get Your Quote",
        "questions": [
            ("first_name", "First name", "FIRST_NAME", None, False),
            ("last_name", "Last name", "LAST_NAME", None, False),
            ("email", "Email", "EMAIL", None, False),
            ("phone_number", "Phone number", "PHONE", None, False),
            ("country", "Country", "COUNTRY", None, False),
            ("which_treatments_are_you_interested_in?", "Which treatments are you interested in?", "CUSTOM",
             ("Dental Implants", "Zirconium Crowns", "Porcelain Veneers", "Teeth Whitening", "All-on-4",
              "Hollywood Smile"), True),
            ("travel_month", "Preferred travel month", "CUSTOM", "MONTHS", False),
            ("budget_band", "Budget", "CUSTOM", ("$1k-$3k", "$3k-$6k", "$6k-$10k", "$10k+", "Not sure yet"), False),
        ],
        "disclaimers": [("optional_1", "Send me offers by e-mail"), ("optional_2", "Call me back within 24h")],
    },
    {
        "name": "Rhinoplasty & Facial Aesthetics",
        "questions": [
            ("full_name", "Ad soyad", "FULL_NAME", None, False),
            ("phone_number", "Telefon numarası", "PHONE", None, False),
            ("email", "E-posta", "EMAIL", None, False),
            ("city", "Şehir", "CITY", None, False),
            ("ilgilendiğiniz_işlem", "İlgilendiğiniz işlem", "CUSTOM",
             ("Burun estetiği", "Göz kapağı estetiği", "Yüz germe", "Dolgu / Botoks", "Çene estetiği"), True),
            ("daha_önce_ameliyat_oldunuz_mu?", "Daha önce ameliyat oldunuz mu?", "CUSTOM", ("Evet", "Hayır"),
             False),
            ("preferred_contact_time", "Preferred contact time", "CUSTOM",
             ("Sabah (09-12)", "Öğleden sonra (12-17)", "Akşam (17-21)"), False),
        ],
        "disclaimers": [("optional_1", "KVKK aydınlatma metnini okudum, onaylıyorum")],
    },
    {
        "name": "LASIK Eye Surgery – Check Your Eligibility",
        "questions": [
            ("full_name", "Full name", "FULL_NAME", None, False),
            ("email", "Email", "EMAIL", None, False),
            ("phone_number", "Phone number", "PHONE", None, False),
            ("do_you_wear_glasses_or_contacts?", "Do you wear glasses or contacts?", "CUSTOM",
             ("Glasses", "Contact lenses", "Both", "Neither"), False),
            ("travel_month", "Preferred travel month", "CUSTOM", "MONTHS", False),
            ("what_is_your_budget?", "What is your budget?", "CUSTOM", ("<$1,500", "$1,500-$3,000", ">$3,000"),
             False),
        ],
        "disclaimers": [],
    },
    {
        "name": "Corporate Health Check-up Packages",
        "questions": [
            ("full_name", "Full name", "FULL_NAME", None, False),
            ("work_email", "Work email", "WORK_EMAIL", None, False),
            ("work_phone_number", "Work phone number", "WORK_PHONE_NUMBER", None, False),
            ("company_name", "Company name", "COMPANY_NAME", None, False),
            ("job_title", "Job title", "JOB_TITLE", None, False),
            ("number_of_employees", "Number of employees", "CUSTOM", ("1-10", "11-50", "51-200", "200+"), False),
            ("packages_of_interest", "Packages of interest", "CUSTOM",
             ("Executive Check-up", "Cardiology Screening", "Women's Health", "Oncology Screening"), True),
        ],
        "disclaimers": [("optional_1", "I consent to the processing of my data")],
    },
    {
        "name": "Bariatric Surgery – Free Assessment",
        "questions": [
            ("full_name", "Full name", "FULL_NAME", None, False),
            ("email", "Email", "EMAIL", None, False),
            ("phone_number", "Phone number (WhatsApp)", "PHONE", None, False),
            ("bmi_range", "What is your BMI?", "CUSTOM", ("30-35", "35-40", "40-45", "45+", "I don't know"), False),
            ("treatment_of_interest", "Which procedures?", "CUSTOM",
             ("Gastric Sleeve", "Gastric Bypass", "Gastric Balloon", "Mini Bypass"), True),
            ("travel_month", "When would you like to travel?", "CUSTOM", "MONTHS", False),
            ("budget_band", "Budget", "CUSTOM", ("€3k-€5k", "€5k-€8k", "€8k+"), False),
        ],
        "disclaimers": [("optional_1", "Send me before/after photos"), ("optional_2", "Contact me on WhatsApp")],
    },
)

PAGE_NAMES = (
    "Anatolia Health Clinic", "İstanbul Smile Dental Centre", "Bosphorus Aesthetics", "Antalya Vision Eye Hospital",
    "Ege Medical Travel", "Kapadokya Hair Institute", "Marmara Wellness Group", "Lykia Health Tourism",
)

COMPANIES = ("Koç Holding", "Siemens AG", "Acme Ltd", "Emirates NBD", "Yandex", "Philips", "Türk Telekom",
             "Unilever", "Aramco", "Hepsiburada")
JOB_TITLES = ("HR Manager", "Office Manager", "CFO", "İnsan Kaynakları Müdürü", "Benefits Lead", "COO")

PAGE_REGIONS_DEFAULT = ("TR", "DE", "GB", "TR", "NL", "AE", "TR", "US")
