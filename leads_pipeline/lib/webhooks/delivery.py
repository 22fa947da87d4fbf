"""One webhook delivery read: Meta's ``leadgen`` notification body → :class:`Change` values (no I/O, no warehouse).

A notification names a lead (``leadgen_id``) and where it came from (Page, form, ad) but carries none of its
answers. The receiver (``leads_pipeline.web.webhooks``) checks the signature, then calls :func:`parse_delivery`
before anything is stored, so a malformed body is refused with a 400 that says where it is wrong — never echoing
the body, which may be a stranger's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_DEPTH", "Change", "InvalidDelivery", "parse_delivery", "change_json"]

_DIGITS = re.compile(r"[0-9]{1,40}")
#: Meta's notifications nest 6 levels (body → entry → change → value → …); a deeper body is not one. Checked before
#: anything walks or re-serialises it: json.dumps of a change nested near Python's recursion limit fails in the
#: inbox writer, which would answer 503 and make Meta retry the same body for 36 hours.
MAX_DEPTH = 32


class InvalidDelivery(ValueError):
    """A webhook body that is not a Meta ``page`` notification (malformed JSON or shape); the message says where."""


@dataclass(frozen=True)
class Change:
    """One ``leadgen`` change of a delivery, ids as strings (Meta sends strings; its doc sample sends numbers)."""

    leadgen_id: str
    page_id: str | None
    form_id: str | None = None
    ad_id: str | None = None
    adgroup_id: str | None = None
    created_time: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)  # the change as received


def _id(value: Any, where: str, *, required: bool) -> str | None:
    """A Meta id as a string of digits: strings and (JSON) integers are accepted."""
    if value is None or value == "":
        if required:
            raise InvalidDelivery(f"{where} is missing")
        return None
    if isinstance(value, bool):
        raise InvalidDelivery(f"{where} is not a Meta id")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:  # floats lose digits of 15+-digit ids: refuse rather than store a wrong id
        raise InvalidDelivery(f"{where} is not a Meta id (a {type(value).__name__})")
    if not _DIGITS.fullmatch(text):
        raise InvalidDelivery(f"{where} is not a Meta id (digits only)")
    return text


def _unix(value: Any, where: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidDelivery(f"{where} is not a Unix time")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise InvalidDelivery(f"{where} is not a Unix time")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether decoded JSON nests more than ``limit`` lists/objects deep (iterative: no recursion on hostile input)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def parse_delivery(raw_body: bytes) -> list[Change]:
    """The ``leadgen`` changes of a webhook body (Meta's ``{"object":"page","entry":[{"id","time","changes":[…]}]}``).

    Changes of other fields (``feed``, ``messages``…) and notifications of other objects are ignored. Raises
    :class:`InvalidDelivery` — naming the offending place, never echoing the body — for malformed JSON or shape.
    """
    try:
        body = json.loads(raw_body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidDelivery(f"the body is not valid JSON ({type(exc).__name__} at position "
                              f"{getattr(exc, 'pos', '?')})") from None
    except RecursionError:  # e.g. 100,000 nested lists: Python's parser gives up before reading them
        raise InvalidDelivery(f"the body nests JSON deeper than {MAX_DEPTH} levels") from None
    if _deeper_than(body, MAX_DEPTH):
        raise InvalidDelivery(f"the body nests JSON deeper than {MAX_DEPTH} levels")
    if not isinstance(body, dict):
        raise InvalidDelivery("the body is not a JSON object with an entry list")
    obj = body.get("object")
    if obj is not None and not isinstance(obj, str):
        raise InvalidDelivery("object is not a string")
    entries = body.get("entry")
    if not isinstance(entries, list):
        raise InvalidDelivery("entry is missing or not a list")
    if obj not in (None, "page"):
        return []  # not a Page notification (e.g. an app also subscribed to user or instagram objects)
    changes: list[Change] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InvalidDelivery(f"entry[{i}] is not an object")
        entry_changes = entry.get("changes", [])
        if entry_changes is None:
            continue
        if not isinstance(entry_changes, list):
            raise InvalidDelivery(f"entry[{i}].changes is not a list")
        for j, change in enumerate(entry_changes):
            where = f"entry[{i}].changes[{j}]"
            if not isinstance(change, dict):
                raise InvalidDelivery(f"{where} is not an object")
            if change.get("field") != "leadgen":
                continue
            changes.append(_change(entry, change, i, where))
    return changes


def _change(entry: dict[str, Any], change: dict[str, Any], i: int, where: str) -> Change:
    value = change.get("value")
    if not isinstance(value, dict):
        raise InvalidDelivery(f"{where}.value is missing or not an object")
    page_id = _id(value.get("page_id"), f"{where}.value.page_id", required=False)
    if page_id is None:  # the entry is the Page
        page_id = _id(entry.get("id"), f"entry[{i}].id", required=False)
    return Change(
        leadgen_id=_id(value.get("leadgen_id"), f"{where}.value.leadgen_id", required=True),
        page_id=page_id,
        form_id=_id(value.get("form_id"), f"{where}.value.form_id", required=False),
        ad_id=_id(value.get("ad_id"), f"{where}.value.ad_id", required=False),
        adgroup_id=_id(value.get("adgroup_id"), f"{where}.value.adgroup_id", required=False),
        created_time=_unix(value.get("created_time"), f"{where}.value.created_time"),
        raw=change,
    )


def change_json(change: Change) -> str:
    """The change as received, as JSON text for ``webhook_inbox.change`` (NUL escaped: PostgreSQL's JSONB refuses
    it)."""
    raw = change.raw or {"field": "leadgen", "value": {"leadgen_id": change.leadgen_id, "page_id": change.page_id,
                                                       "form_id": change.form_id, "ad_id": change.ad_id,
                                                       "created_time": change.created_time}}
    text = json.dumps(raw, ensure_ascii=False, separators=(",", ":"), default=str)
    return text.replace("\\u0000", "\\ufffd")
