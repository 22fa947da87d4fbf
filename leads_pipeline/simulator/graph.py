"""The Graph API itself, independent of the HTTP transport: a request in, a Meta-shaped response out.

Used by the HTTP server for every ``/{version}/...`` request and, recursively, for the items of a batch request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.parse
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any

from leads_pipeline.simulator import capi
from leads_pipeline.simulator.faults import Decision
from leads_pipeline.simulator.fields import FieldSpec, FieldsSyntaxError, parse_fields
from leads_pipeline.simulator.messages import GraphHost, GraphRequest, GraphResponse
from leads_pipeline.simulator.scenario import VERSION_RE
from leads_pipeline.simulator.world import (
    DEFAULT_LEAD_FIELDS,
    LEAD_FIELDS_ORDER,
    SK_BITS,
    Ad,
    Form,
    Lead,
    Page,
    TokenInfo,
    iso,
)

MAX_BATCH = 50
BATCH_ITEM_CT = "text/javascript; charset=UTF-8"

LEAD_KNOWN_FIELDS = frozenset(LEAD_FIELDS_ORDER) | {
    "home_listing", "partner_name", "post", "post_submission_check_result", "retailer_item_id", "vehicle",
}
FORM_KNOWN_FIELDS = frozenset({
    "allow_organic_lead", "block_display_for_non_targeted_viewer", "context_card", "created_time", "creator",
    "expired_leads_count", "follow_up_action_text", "follow_up_action_url", "id", "is_optimized_for_quality",
    "leads_count", "legal_content", "locale", "name", "organic_leads_count", "page", "page_id", "privacy_policy_url",
    "question_page_custom_headline", "questions", "status", "thank_you_page", "tracking_parameters", "leads",
    "test_leads",
})
FORM_DEFAULT_FIELDS = ("id", "locale", "name", "status")
PAGE_DEFAULT_FIELDS = ("name", "id")
ACCOUNT_DEFAULT_FIELDS = ("access_token", "category", "category_list", "name", "id", "tasks")
FILTER_OPERATORS = ("LESS_THAN", "GREATER_THAN", "GREATER_THAN_OR_EQUAL")
PAGE_TASKS = ["ADVERTISE", "ANALYZE", "CREATE_CONTENT", "MESSAGING", "MODERATE", "MANAGE"]
SCOPES = ["pages_show_list", "ads_management", "leads_retrieval", "pages_read_engagement", "pages_manage_metadata",
          "pages_manage_ads", "business_management", "public_profile"]


class GraphError(Exception):
    def __init__(self, code: int, message: str, *, type_: str = "OAuthException", subcode: int | None = None,
                 status: int = 400, transient: bool | None = None, user_title: str | None = None,
                 user_msg: str | None = None, auth: bool = False):
        super().__init__(message)
        self.code, self.message, self.type, self.subcode = code, message, type_, subcode
        self.status, self.transient, self.user_title, self.user_msg, self.auth = (
            status, transient, user_title, user_msg, auth)

    def envelope(self, trace_id: str) -> dict:
        err: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            err["error_subcode"] = self.subcode
        if self.transient is not None:
            err["is_transient"] = self.transient
        if self.user_title:
            err["error_user_title"] = self.user_title
        if self.user_msg:
            err["error_user_msg"] = self.user_msg
        err["fbtrace_id"] = trace_id
        return {"error": err}


def object_missing(obj_id: str, method: str = "get") -> GraphError:
    return GraphError(
        100,
        f"Unsupported {method} request. Object with ID '{obj_id}' does not exist, cannot be loaded due to missing "
        "permissions, or does not support this operation. Please read the Graph API documentation at "
        "https://developers.facebook.com/docs/graph-api",
        type_="GraphMethodException", subcode=33)


THROTTLE_MESSAGES = {
    4: "(#4) Application request limit reached",
    17: "(#17) User request limit reached",
    32: "(#32) Page request limit reached",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    80001: "(#80001) There have been too many calls to this Page account. Wait a bit and try again. For more info, "
           "please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
    80005: "(#80005) There have been too many leadgen api calls to this Page account. Wait a bit and try again. For "
           "more info, please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
}

_HTML_ERRORS = {
    500: b"<!DOCTYPE html>\n<html lang=\"en\"><head><title>Error</title></head><body><h1>Sorry, something went "
         b"wrong.</h1><p>We're working on it and we'll get it fixed as soon as we can.</p></body></html>\n",
    503: b"<!DOCTYPE html>\n<html><head><title>Service Unavailable</title></head><body><h1>Service Unavailable"
         b"</h1><p>The server is temporarily unable to service your request. Please try again later.</p>"
         b"</body></html>\n",
}

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def meta_pdt(ts: float) -> str:
    """``Sunday, 25-Dec-16 04:45:57 PDT`` (Meta's wording; fixed UTC-7)."""
    t = time.gmtime(int(ts) - 7 * 3600)
    return (f"{_WEEKDAYS[t.tm_wday]}, {t.tm_mday:02d}-{_MONTHS[t.tm_mon - 1]}-{t.tm_year % 100:02d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} PDT")


def encode_cursor(sk: int) -> str:
    return base64.urlsafe_b64encode(b"QVFI" + str(sk).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        if not raw.startswith(b"QVFI"):
            raise ValueError
        return int(raw[4:])
    except (ValueError, TypeError):
        raise GraphError(100, "(#100) The after/before cursor is not valid", type_="GraphMethodException") from None


@dataclass
class _Ctx:
    req: GraphRequest
    version: str | None
    segs: list[str]
    tok: TokenInfo | None = None
    page_id: str | None = None
    leads_served: int = 0
    trace: str = ""


class GraphApp:
    def __init__(self, sim: GraphHost):
        self.sim = sim
        self.world = sim.world
        self.sc = sim.scenario

    # ------------------------------------------------------------------------------------------------- routing --

    def split(self, path: str) -> tuple[str | None, list[str]]:
        segs = [urllib.parse.unquote(s) for s in path.split("/") if s]
        if segs and segs[0][:1] == "v" and VERSION_RE.fullmatch(segs[0]):
            return segs[0], segs[1:]
        return None, segs

    def route_of(self, method: str, path: str) -> str:
        _version, segs = self.split(path)
        w = self.world
        if not segs:
            return "batch" if method == "POST" else "root"
        head = segs[0]
        if len(segs) == 1:
            if head == "me":
                return "me"
            if head == "debug_token":
                return "debug_token"
            obj = w.objects.get(head)
            if isinstance(obj, Page):
                return "page"
            if isinstance(obj, Form):
                return "form"
            if isinstance(obj, Ad):
                return "ad"
            if head in w.leads_by_id:
                return "lead"
            if head in w.datasets.by_id:
                return "dataset"
            if head == w.app_id:
                return "app"
            if head == w.user_id:
                return "me"
            return "node"
        if len(segs) == 2:
            edge = segs[1]
            if head == "oauth" and edge == "access_token":
                return "oauth"
            if edge == "accounts" and head in ("me", w.user_id):
                return "accounts"
            if edge == "leads":
                return "ad_leads" if isinstance(w.objects.get(head), Ad) else "leads"
            if edge in ("leadgen_forms", "subscribed_apps", "subscriptions"):
                return edge
            if edge == "events" and head not in w.objects and head not in w.leads_by_id and \
                    head not in ("me", w.app_id, w.user_id):
                return "dataset_events"  # a dataset, or an unknown id (100/33); a known page/form keeps 2500
        return "unknown"

    # --------------------------------------------------------------------------------------------------- entry --

    def handle(self, req: GraphRequest, decision: Decision | None = None) -> GraphResponse:
        resp = self._handle(req, decision)
        if not resp.trace_id:
            resp.trace_id = self.sim.next_trace_id()
        return resp

    def _handle(self, req: GraphRequest, decision: Decision | None) -> GraphResponse:
        route = self.route_of(req.method, req.path)
        version, segs = self.split(req.path)
        ctx = _Ctx(req, version, segs)
        trace = ctx.trace = self.sim.next_trace_id()
        try:
            if decision is not None and decision.transient in ("http_500", "http_503"):
                status = 500 if decision.transient == "http_500" else 503
                return GraphResponse(status, _HTML_ERRORS[status], route, content_type="text/html; charset=utf-8",
                                     version=version)
            if decision is not None and decision.throttle is not None:
                code, minutes = decision.throttle
                ctx.page_id = self._page_hint(segs)
                raise _Throttled(code, minutes)
            if decision is not None and decision.transient == "code_1":
                raise GraphError(1, "An unknown error has occurred.", status=500, transient=True)
            if decision is not None and decision.transient == "code_2":
                raise GraphError(2, "An unexpected error has occurred. Please retry your request later.",
                                 status=500, transient=True)
            if version is not None and not self.sc.version_accepted(version) or (
                    version is None and not self.sc.allow_unversioned):
                raise GraphError(2635, f"(#2635) You are calling a deprecated version of the Graph API. Please "
                                       f"update to the latest version: {self.sc.api_version}.")
            body = self._dispatch(ctx, route, decision)
            status = 200
        except _Throttled as t:
            err = GraphError(t.code, THROTTLE_MESSAGES[t.code])
            return self._error_response(err, trace, route, ctx, version, throttle=(t.code, t.minutes))
        except GraphError as err:
            return self._error_response(err, trace, route, ctx, version)
        if isinstance(body, (dict, list)):
            data = json.dumps(body, separators=(",", ":")).encode()
        else:
            data = body.encode() if isinstance(body, str) else body
        # A Conversions API answer carries its fbtrace_id in the body too: the header says the same.
        return GraphResponse(status, data, route, page_id=ctx.page_id, leads_served=ctx.leads_served,
                             version=version, trace_id=ctx.trace if route == "dataset_events" else "")

    def _error_response(self, err: GraphError, trace: str, route: str, ctx: _Ctx, version: str | None,
                        throttle: tuple[int, int] | None = None) -> GraphResponse:
        headers = []
        if err.auth or err.code in (190, 102, 104):
            headers.append(("WWW-Authenticate", f'OAuth "Facebook Platform" "invalid_token" "{err.message}"'))
        body = json.dumps(err.envelope(trace), separators=(",", ":")).encode()
        return GraphResponse(err.status, body, route, headers=headers, page_id=ctx.page_id, version=version,
                             throttle=throttle, trace_id=trace)

    def _page_hint(self, segs: list[str]) -> str | None:
        if not segs:
            return None
        obj = self.world.objects.get(segs[0])
        if isinstance(obj, Page):
            return obj.id
        if isinstance(obj, (Form, Ad)):
            return obj.page.id
        lead = self.world.leads_by_id.get(segs[0])
        if lead is not None:
            return lead.form.page.id
        dataset = self.world.datasets.get(segs[0])
        return dataset.page_id if dataset else None

    # ---------------------------------------------------------------------------------------------------- auth --

    def _auth(self, ctx: _Ctx, decision: Decision | None, *, allow_app: bool = False) -> TokenInfo:
        token = ctx.req.token
        if not token:
            raise GraphError(104, "An access token is required to request this resource.", auth=True)
        w = self.world
        if token == w.app_token:
            tok = TokenInfo(token, "app")
        else:
            tok = w.tokens.get(token)
            if tok is None:
                raise GraphError(190, "Invalid OAuth access token - Cannot parse access token", subcode=467, auth=True)
        if tok.kind != "app" and tok.expires_at and tok.expires_at < w.now:
            raise self._expired(tok.expires_at, w.now)
        if decision is not None and decision.token_expired and tok.kind != "app" and \
                self.sim.faults.token_expired(token):
            expired = self.sim.faults.expired_at or time.time()
            raise self._expired(expired, time.time())
        if self.sc.require_appsecret_proof and tok.kind != "app":
            proof = ctx.req.params.get("appsecret_proof")
            if not proof:
                raise GraphError(190, "(#190) API calls from the server require an appsecret_proof argument",
                                 auth=True)
            expected = hmac.new(w.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(proof, expected):
                raise GraphError(100, "Invalid appsecret_proof provided in the API argument",
                                 type_="GraphMethodException")
        if tok.kind == "app" and not allow_app:
            raise GraphError(102, "(#102) A user access token is required to request this resource.", auth=True)
        if tok.kind == "page":
            ctx.page_id = tok.page.id
        ctx.tok = tok
        return tok

    @staticmethod
    def _expired(expired_at: float, now: float) -> GraphError:
        return GraphError(190, f"Error validating access token: Session has expired on {meta_pdt(expired_at)}. "
                               f"The current time is {meta_pdt(now)}.", subcode=463, auth=True)

    @staticmethod
    def _sees(tok: TokenInfo, page: Page) -> bool:
        return tok.kind == "user" or (tok.kind == "page" and tok.page is page)

    # ------------------------------------------------------------------------------------------------ dispatch --

    def _dispatch(self, ctx: _Ctx, route: str, decision: Decision | None) -> Any:
        req, segs, w = ctx.req, ctx.segs, self.world
        method = req.method
        if route == "batch":
            self._auth(ctx, decision)
            return self._batch(ctx)
        if route == "oauth":
            return self._oauth(ctx)
        if route == "root":
            raise GraphError(100, "(#100) Unsupported get request. Please read the Graph API documentation at "
                                  "https://developers.facebook.com/docs/graph-api", type_="GraphMethodException")
        if route == "debug_token":
            self._auth(ctx, decision, allow_app=True)
            return self._debug_token(ctx)
        if route == "subscriptions":
            return self._subscriptions(ctx, decision)
        tok = self._auth(ctx, decision)
        if route in ("dataset", "dataset_events"):
            return self._dataset(ctx, tok, route)
        if method not in ("GET",) and route not in ("subscribed_apps",):
            raise object_missing(segs[0], method.lower())
        fields = self._fields(req)
        if route == "me":
            if tok.kind == "page":
                return self._select({"name": tok.page.name, "id": tok.page.id}, fields, ("name", "id"))
            return self._select({"name": w.user_name, "id": w.user_id}, fields, ("name", "id"))
        if route == "accounts":
            if tok.kind != "user":
                raise GraphError(100, "(#100) Tried accessing nonexisting field (accounts) on node type (Page)",
                                 type_="GraphMethodException")
            return self._accounts(ctx, fields, decision)
        if route == "page":
            page = w.objects[segs[0]]
            if not self._sees(tok, page):
                raise object_missing(segs[0])
            ctx.page_id = page.id
            return self._page_node(ctx, page, fields)
        if route == "leadgen_forms":
            page = w.objects.get(segs[0])
            if not isinstance(page, Page) or not self._sees(tok, page):
                raise object_missing(segs[0])
            ctx.page_id = page.id
            return self._forms_edge(ctx, page, fields, decision)
        if route == "form":
            form = w.objects[segs[0]]
            if not self._sees(tok, form.page):
                raise object_missing(segs[0])
            ctx.page_id = form.page.id
            return self._form_node(ctx, form, fields)
        if route in ("leads", "ad_leads"):
            owner = w.objects.get(segs[0])
            if not isinstance(owner, (Form, Ad)) or not self._sees(tok, owner.page):
                raise object_missing(segs[0])
            ctx.page_id = owner.page.id
            return self._leads_edge(ctx, owner, fields, req.params, decision)
        if route == "lead":
            lead = w.visible_lead(segs[0])
            if lead is None or not self._sees(tok, lead.form.page):
                raise object_missing(segs[0])
            ctx.page_id = lead.form.page.id
            ctx.leads_served += 1
            return self._lead_fields_json(lead, fields)
        if route == "ad":
            ad = w.objects[segs[0]]
            if not self._sees(tok, ad.page):
                raise object_missing(segs[0])
            ctx.page_id = ad.page.id
            node = {"id": ad.id, "name": ad.name, "adset_id": ad.adset_id, "campaign_id": ad.campaign_id,
                    "status": "ACTIVE", "effective_status": "ACTIVE", "created_time": iso(ad.created_time)}
            return self._select(node, fields, ("id",))
        if route == "app":
            return self._select({"id": w.app_id, "name": w.app_name, "link": "https://www.facebook.com/games/?app_id="
                                 + w.app_id, "category": "Business"}, fields, ("link", "name", "id"))
        if route == "subscribed_apps":
            return self._subscribed_apps(ctx, tok)
        if route == "unknown" and len(segs) >= 2:
            obj_known = segs[0] in w.objects or segs[0] in w.leads_by_id or segs[0] in ("me", w.app_id, w.user_id)
            if obj_known:
                raise GraphError(2500, f"Unknown path components: /{'/'.join(segs[1:])}")
        raise object_missing(segs[0] if segs else "")

    # -------------------------------------------------------------------------------------------------- fields --

    @staticmethod
    def _fields(req: GraphRequest) -> list[FieldSpec] | None:
        raw = req.params.get("fields")
        if raw is None or raw.strip() == "":
            return None
        try:
            return parse_fields(raw)
        except FieldsSyntaxError as exc:
            raise GraphError(100, f"Syntax error {exc}", type_="OAuthException") from None

    @staticmethod
    def _select(node: dict, fields: list[FieldSpec] | None, default: tuple[str, ...]) -> dict:
        names = [f.name for f in fields] if fields else list(default)
        return {n: node[n] for n in names if n in node}

    # ------------------------------------------------------------------------------------------------- paging --

    def _limit(self, req_params: dict[str, str], override: int | None = None) -> int:
        raw = override if override is not None else req_params.get("limit")
        if raw is None or raw == "":
            return self.sc.default_limit
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise GraphError(100, "(#100) param limit must be a non-negative integer",
                             type_="GraphMethodException") from None
        if value < 0:
            raise GraphError(100, "(#100) param limit must be a non-negative integer",
                             type_="GraphMethodException")
        return max(1, min(value, self.sc.page_limit_max))

    @staticmethod
    def _window(sks: list[int], lo: int, hi: int, limit: int, after: int | None,
                before: int | None) -> tuple[int, int, bool, bool]:
        """Positions [start, end) of the page (served from end-1 down to start), has_next, has_previous."""
        if after is not None:
            end = bisect_left(sks, after, lo, hi)
            start = max(lo, end - limit)
        elif before is not None:
            start = bisect_right(sks, before, lo, hi)
            end = min(hi, start + limit)
        else:
            end = hi
            start = max(lo, hi - limit)
        start = min(start, end)
        return start, end, start > lo, end < hi

    def _paging(self, ctx: _Ctx, first_sk: int, last_sk: int, has_next: bool, has_prev: bool,
                path: str | None = None, query: list[tuple[str, str]] | None = None,
                limit: int | None = None) -> dict:
        paging: dict[str, Any] = {"cursors": {"before": encode_cursor(first_sk), "after": encode_cursor(last_sk)}}
        if has_next:
            paging["next"] = self._url(ctx, path, query, limit, "after", paging["cursors"]["after"])
        if has_prev:
            paging["previous"] = self._url(ctx, path, query, limit, "before", paging["cursors"]["before"])
        return paging

    def _url(self, ctx: _Ctx, path: str | None, query: list[tuple[str, str]] | None, limit: int | None,
             key: str, cursor: str) -> str:
        req = ctx.req
        if path is None:
            path = req.path
        if query is None:
            query = req.query
        pairs = [(k, v) for k, v in query if k not in ("after", "before")]
        if not req.token_in_query:
            pairs = [(k, v) for k, v in pairs if k not in ("access_token", "appsecret_proof")]
        if limit is not None and not any(k == "limit" for k, _ in pairs):
            pairs.append(("limit", str(limit)))
        pairs.append((key, cursor))
        return f"http://{req.host}{path}?{urllib.parse.urlencode(pairs)}"

    def _list_page(self, ctx: _Ctx, items_json: list[str], sks: list[int], start: int, end: int, has_next: bool,
                   has_prev: bool, limit: int, summary: int | None, decision: Decision | None,
                   path: str | None = None, query: list[tuple[str, str]] | None = None) -> str:
        """Assemble ``{"data":[...],"paging":{...},"summary":{...}}`` as text (pre-serialised items)."""
        parts = ['{"data":[', ",".join(items_json), "]"]
        if decision is not None and decision.empty_page:
            parts = ['{"data":[]']
            # `next` (and cursors.after) point where this page would have started: following it serves the data.
            cur = ctx.req.params.get("after") if path is None else None
            anchor = cur or encode_cursor(1 << 96)
            paging = {"cursors": {"before": anchor, "after": anchor},
                      "next": self._url(ctx, path, query, limit, "after", anchor)}
            parts.append(',"paging":' + json.dumps(paging, separators=(",", ":")))
        elif end > start:
            paging = self._paging(ctx, sks[end - 1], sks[start], has_next, has_prev, path, query, limit)
            parts.append(',"paging":' + json.dumps(paging, separators=(",", ":")))
        if summary is not None:
            parts.append(',"summary":{"total_count":%d}' % summary)
        parts.append("}")
        return "".join(parts)

    @staticmethod
    def _want_summary(params: dict[str, str]) -> bool:
        raw = params.get("summary")
        return raw is not None and raw.strip().lower() not in ("", "false", "0")

    # -------------------------------------------------------------------------------------------------- leads --

    def _lead_field_names(self, fields: list[FieldSpec] | None) -> tuple[str, ...]:
        if not fields:
            return DEFAULT_LEAD_FIELDS
        names: list[str] = []
        for spec in fields:
            if spec.name not in LEAD_KNOWN_FIELDS:
                raise GraphError(100, f"(#100) Tried accessing nonexisting field ({spec.name}) on node type (Lead)",
                                 type_="GraphMethodException")
            if spec.name not in names:
                names.append(spec.name)
        return tuple(names)

    def _lead_fields_json(self, lead: Lead, fields: list[FieldSpec] | None) -> str:
        return lead.json_for(self._lead_field_names(fields))

    def _time_range(self, raw: str | None) -> tuple[int | None, int | None]:
        """``filtering`` → (min created_time, max created_time), inclusive; ISO-string values are ignored."""
        if raw is None or raw.strip() == "":
            return None, None
        try:
            conds = json.loads(raw)
        except ValueError:
            raise GraphError(100, "(#100) param filtering must be an array.", type_="OAuthException") from None
        if isinstance(conds, dict):
            conds = [conds]
        if not isinstance(conds, list):
            raise GraphError(100, "(#100) param filtering must be an array.", type_="OAuthException")
        lo = hi = None
        for i, cond in enumerate(conds):
            if not isinstance(cond, dict) or not {"field", "operator", "value"} <= set(cond):
                raise GraphError(100, f"(#100) param filtering[{i}] must be an object with keys field, operator and "
                                      "value.", type_="OAuthException")
            fld, op, value = cond["field"], cond["operator"], cond["value"]
            if fld != "time_created":
                raise GraphError(100, f"(#100) Filtering field {fld} is invalid.", type_="OAuthException")
            if op not in FILTER_OPERATORS:
                raise GraphError(100, f"(#100) param filtering[{i}][operator] must be one of the following values: "
                                      + ", ".join(FILTER_OPERATORS), type_="OAuthException")
            if isinstance(value, bool):
                continue
            if isinstance(value, (int, float)):
                v = int(value)
            elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
                v = int(value.strip())
            else:
                continue  # e.g. an ISO date: Meta silently ignores it and returns everything
            if op == "GREATER_THAN":
                lo = v + 1 if lo is None else max(lo, v + 1)
            elif op == "GREATER_THAN_OR_EQUAL":
                lo = v if lo is None else max(lo, v)
            else:
                hi = v - 1 if hi is None else min(hi, v - 1)
        return lo, hi

    def _leads_edge(self, ctx: _Ctx, owner: Form | Ad, fields: list[FieldSpec] | None, params: dict[str, str],
                    decision: Decision | None, *, limit_override: int | None = None, path: str | None = None,
                    query: list[tuple[str, str]] | None = None, filtering: bool = True) -> str:
        names = self._lead_field_names(fields)
        limit = self._limit(params, limit_override)
        sks, leads = owner.sks, owner.leads
        hi = self.world.visible_hi(sks)
        lo = 0
        tmin, tmax = self._time_range(params.get("filtering")) if filtering else (None, None)
        if tmin is not None:
            lo = bisect_left(sks, tmin << SK_BITS, 0, hi)
        if tmax is not None:
            hi = min(hi, bisect_left(sks, (tmax + 1) << SK_BITS, 0, hi)) if tmax >= 0 else 0
        lo = min(lo, hi)
        after = params.get("after") if path is None else None
        before = params.get("before") if path is None else None
        start, end, has_next, has_prev = self._window(
            sks, lo, hi, limit, decode_cursor(after) if after else None, decode_cursor(before) if before else None)
        items = [leads[i].json_for(names) for i in range(end - 1, start - 1, -1)]
        if not (decision is not None and decision.empty_page):
            ctx.leads_served += len(items)
        summary = hi - lo if self._want_summary(params) else None
        return self._list_page(ctx, items, sks, start, end, has_next, has_prev, limit, summary, decision, path, query)

    # ------------------------------------------------------------------------------------------- forms / pages --

    def _form_node_dict(self, ctx: _Ctx, form: Form, fields: list[FieldSpec] | None) -> dict:
        specs = fields or [FieldSpec(n) for n in FORM_DEFAULT_FIELDS]
        out: dict[str, Any] = {}
        for spec in specs:
            n = spec.name
            if n not in FORM_KNOWN_FIELDS:
                raise GraphError(100, f"(#100) Tried accessing nonexisting field ({n}) on node type (LeadgenForm)",
                                 type_="GraphMethodException")
            if n == "id":
                out["id"] = form.id
            elif n == "name":
                out["name"] = form.name
            elif n == "status":
                out["status"] = form.status
            elif n == "locale":
                out["locale"] = form.locale
            elif n == "created_time":
                out["created_time"] = iso(form.created_time)
            elif n in ("leads_count", "organic_leads_count"):
                total, organic = self.world.form_counts(form)
                out[n] = total if n == "leads_count" else organic
            elif n == "expired_leads_count":
                out[n] = 0
            elif n == "page":
                out["page"] = {"name": form.page.name, "id": form.page.id}
            elif n == "page_id":
                out["page_id"] = form.page.id
            elif n == "questions":
                out["questions"] = form.questions_json()
            elif n == "privacy_policy_url":
                out[n] = "https://example.com/privacy"
            elif n == "follow_up_action_url":
                out[n] = "https://example.com/thank-you"
            elif n in ("allow_organic_lead",):
                out[n] = True
            elif n in ("block_display_for_non_targeted_viewer", "is_optimized_for_quality"):
                out[n] = False
            elif n == "leads":
                out["leads"] = json.loads(self._nested_leads(ctx, form, spec))
            elif n == "test_leads":
                out["test_leads"] = {"data": []}
        return out

    def _nested_leads(self, ctx: _Ctx, form: Form, spec: FieldSpec) -> str:
        sub_fields = spec.sub
        path = f"/{ctx.version}/{form.id}/leads" if ctx.version else f"/{form.id}/leads"
        query: list[tuple[str, str]] = []
        if ctx.req.token_in_query:
            query += [(k, v) for k, v in ctx.req.query if k in ("access_token", "appsecret_proof")]
        if spec.raw_sub:
            query.append(("fields", spec.raw_sub))
        limit = spec.limit
        query.append(("limit", str(self._limit({}, limit))))
        return self._leads_edge(ctx, form, sub_fields, {}, None, limit_override=limit, path=path, query=query,
                                filtering=False)

    def _form_node(self, ctx: _Ctx, form: Form, fields: list[FieldSpec] | None) -> dict:
        return self._form_node_dict(ctx, form, fields)

    def _forms_edge(self, ctx: _Ctx, page: Page, fields: list[FieldSpec] | None, decision: Decision | None,
                    *, limit_override: int | None = None, path: str | None = None,
                    query: list[tuple[str, str]] | None = None) -> str:
        params = ctx.req.params if path is None else {}
        forms = sorted(page.forms, key=lambda f: (f.created_time, f.idx))
        sks = [(f.created_time << SK_BITS) | f.idx for f in forms]
        limit = self._limit(params, limit_override)
        after, before = params.get("after"), params.get("before")
        start, end, has_next, has_prev = self._window(
            sks, 0, len(sks), limit, decode_cursor(after) if after else None, decode_cursor(before) if before else None)
        items = [json.dumps(self._form_node_dict(ctx, forms[i], fields), separators=(",", ":"))
                 for i in range(end - 1, start - 1, -1)]
        summary = len(sks) if self._want_summary(params) else None
        return self._list_page(ctx, items, sks, start, end, has_next, has_prev, limit, summary, decision, path, query)

    def _account_dict(self, page: Page, specs: list[FieldSpec] | None, ctx: _Ctx) -> dict:
        node = {"access_token": page.access_token, "category": page.category,
                "category_list": [{"id": "2214", "name": "Medical & Health"}], "name": page.name, "id": page.id,
                "tasks": PAGE_TASKS, "link": f"https://www.facebook.com/{page.id}"}
        if not specs:
            return {k: node[k] for k in ACCOUNT_DEFAULT_FIELDS}
        out: dict[str, Any] = {}
        for spec in specs:
            if spec.name == "leadgen_forms":
                out["leadgen_forms"] = json.loads(self._nested_forms(ctx, page, spec))
            elif spec.name in node:
                out[spec.name] = node[spec.name]
        return out

    def _nested_forms(self, ctx: _Ctx, page: Page, spec: FieldSpec) -> str:
        path = f"/{ctx.version}/{page.id}/leadgen_forms" if ctx.version else f"/{page.id}/leadgen_forms"
        query: list[tuple[str, str]] = []
        if ctx.req.token_in_query:
            query += [(k, v) for k, v in ctx.req.query if k in ("access_token", "appsecret_proof")]
        if spec.raw_sub:
            query.append(("fields", spec.raw_sub))
        query.append(("limit", str(self._limit({}, spec.limit))))
        return self._forms_edge(ctx, page, spec.sub, None, limit_override=spec.limit, path=path, query=query)

    def _accounts(self, ctx: _Ctx, fields: list[FieldSpec] | None, decision: Decision | None) -> str:
        pages = self.world.pages
        n = len(pages)
        sks = [n - i for i in range(n - 1, -1, -1)]  # ascending; page 0 has the highest key → served first
        ordered = list(reversed(pages))
        params = ctx.req.params
        limit = self._limit(params)
        after, before = params.get("after"), params.get("before")
        start, end, has_next, has_prev = self._window(
            sks, 0, n, limit, decode_cursor(after) if after else None, decode_cursor(before) if before else None)
        items = [json.dumps(self._account_dict(ordered[i], fields, ctx), separators=(",", ":"))
                 for i in range(end - 1, start - 1, -1)]
        summary = n if self._want_summary(params) else None
        return self._list_page(ctx, items, sks, start, end, has_next, has_prev, limit, summary, decision)

    def _page_node(self, ctx: _Ctx, page: Page, fields: list[FieldSpec] | None) -> dict:
        if not fields:
            return {"name": page.name, "id": page.id}
        return self._account_dict(page, fields, ctx)

    # ------------------------------------------------------------------------------------- conversions api --

    def _dataset(self, ctx: _Ctx, tok: TokenInfo, route: str) -> dict:
        """``GET /{dataset}`` (id, name) and ``POST /{dataset}/events`` (Conversions API for CRM, see capi.py)."""
        method = ctx.req.method
        ds = self.world.datasets.get(ctx.segs[0])
        if ds is None or (tok.kind == "page" and ds.page_id is not None and tok.page.id != ds.page_id):
            raise object_missing(ctx.segs[0], method.lower())
        ctx.page_id = ds.page_id
        if route == "dataset":
            if method != "GET":
                raise object_missing(ds.id, method.lower())
            return self._select({"id": ds.id, "name": ds.name}, self._fields(ctx.req), ("id", "name"))
        if method != "POST":
            raise object_missing(ds.id, method.lower())
        received_at = int(self.sim.wall_time())
        trace = ctx.trace
        try:
            data = capi.parse_data(ctx.req.params.get("data"))
            notes = capi.validate(data, now=received_at, lead_created=self.world.lead_created)
        except capi.EventRejected as exc:
            self.world.datasets.reject(ds, exc, received_at=received_at, trace_id=trace)
            raise GraphError(100, exc.message, subcode=exc.subcode, transient=False, user_title=exc.user_title,
                             user_msg=exc.user_msg) from None
        test_code = ctx.req.params.get("test_event_code") or None
        self.world.datasets.record(ds, data, received_at=received_at, trace_id=trace, test_event_code=test_code,
                                   notes=notes)
        return {"events_received": len(data), "messages": [f"data[{i}]: {why}" for i, why in sorted(notes.items())],
                "fbtrace_id": trace}

    # -------------------------------------------------------------------------------------------- webhooks etc --

    def _subscribed_apps(self, ctx: _Ctx, tok: TokenInfo) -> dict:
        page = self.world.objects[ctx.segs[0]]
        if tok.kind != "page":
            raise GraphError(210, "(#210) This call requires a Page access token.")
        if tok.page is not page:
            raise object_missing(page.id, ctx.req.method.lower())
        ctx.page_id = page.id
        method = ctx.req.method
        if method == "GET":
            if page.installed_fields is None:
                return {"data": []}
            w = self.world
            return {"data": [{"category": "Business", "link": "https://example.com/app", "name": w.app_name,
                              "id": w.app_id, "subscribed_fields": list(page.installed_fields)}]}
        if method == "POST":
            raw = ctx.req.params.get("subscribed_fields")
            if not raw:
                raise GraphError(100, "(#100) The parameter subscribed_fields is required", type_="OAuthException")
            try:
                parsed = json.loads(raw)
                names = [str(x) for x in parsed] if isinstance(parsed, list) else [str(parsed)]
            except ValueError:
                names = [x.strip() for x in raw.split(",") if x.strip()]
            page.installed_fields = names
            return {"success": True}
        if method == "DELETE":
            page.installed_fields = None
            return {"success": True}
        raise object_missing(page.id, method.lower())

    def _subscriptions(self, ctx: _Ctx, decision: Decision | None) -> dict:
        w = self.world
        if ctx.segs[0] != w.app_id:
            raise object_missing(ctx.segs[0], ctx.req.method.lower())
        tok = self._auth(ctx, decision, allow_app=True)
        if tok.kind != "app":
            raise GraphError(15, "(#15) This method must be called with an app access_token.")
        method, params = ctx.req.method, ctx.req.params
        if method == "GET":
            return {"data": [
                {"object": obj, "callback_url": sub["callback_url"], "active": True,
                 "fields": [{"name": f, "version": self.sc.api_version} for f in sub["fields"]]}
                for obj, sub in sorted(w.app_subscriptions.items())]}
        if method == "POST":
            obj = params.get("object", "")
            if obj not in ("page", "user", "instagram", "permissions"):
                raise GraphError(100, "(#100) param object must be one of {user, page, permissions, instagram, ...}",
                                 type_="OAuthException")
            callback = params.get("callback_url", "")
            if not callback.startswith(("http://", "https://")):
                raise GraphError(100, "(#100) param callback_url must be a valid URL", type_="OAuthException")
            raw_fields = params.get("fields", "")
            try:
                parsed = json.loads(raw_fields)
                flds = [str(x) for x in parsed] if isinstance(parsed, list) else [str(parsed)]
            except ValueError:
                flds = [x.strip() for x in raw_fields.split(",") if x.strip()]
            problem = self.sim.verify_callback(callback, params.get("verify_token", ""))
            if problem:
                raise GraphError(2200, f"(#2200) callback verification failed: {problem}", type_="OAuthException")
            w.app_subscriptions[obj] = {"callback_url": callback, "fields": flds,
                                        "include_values": params.get("include_values") in ("true", "1")}
            self.sim.on_subscription(obj, callback)
            return {"success": True}
        if method == "DELETE":
            obj = params.get("object")
            if obj:
                w.app_subscriptions.pop(obj, None)
            else:
                w.app_subscriptions.clear()
            self.sim.on_subscription(obj or "*", None)
            return {"success": True}
        raise object_missing(w.app_id, method.lower())

    def _debug_token(self, ctx: _Ctx) -> dict:
        w = self.world
        raw = ctx.req.params.get("input_token")
        if not raw:
            raise GraphError(100, "(#100) The parameter input_token is required", type_="OAuthException")
        if raw == w.app_token:
            return {"data": {"app_id": w.app_id, "type": "APP", "application": w.app_name, "is_valid": True,
                             "scopes": []}}
        tok = w.tokens.get(raw)
        if tok is None:
            return {"data": {"error": {"code": 190, "message": "Invalid OAuth access token."}, "is_valid": False,
                             "scopes": []}}
        expired = bool(tok.expires_at and tok.expires_at < w.now)
        faults = self.sim.faults
        if faults.expired_at is not None and faults.token_expired(raw):
            expired = True
        data: dict[str, Any] = {
            "app_id": w.app_id, "type": "PAGE" if tok.kind == "page" else "USER", "application": w.app_name,
            "data_access_expires_at": w.now + 90 * 86400, "expires_at": tok.expires_at,
            "is_valid": not expired, "issued_at": tok.issued_at, "scopes": list(SCOPES),
            "granular_scopes": [{"scope": s, "target_ids": [p.id for p in w.pages]}
                                for s in ("pages_show_list", "leads_retrieval", "pages_read_engagement")],
            "user_id": w.user_id,
        }
        if tok.kind == "page":
            data["profile_id"] = tok.page.id
        if expired:
            data["error"] = {"code": 190, "message": "Error validating access token: Session has expired.",
                             "subcode": 463}
        return {"data": data}

    def _oauth(self, ctx: _Ctx) -> dict:
        w, p = self.world, ctx.req.params
        grant = p.get("grant_type", "")
        if p.get("client_id") != w.app_id:
            raise GraphError(101, "Error validating application. Invalid application ID.")
        if not hmac.compare_digest(p.get("client_secret", ""), w.app_secret):
            raise GraphError(1, "Error validating client secret.")
        if grant == "client_credentials":
            return {"access_token": w.app_token, "token_type": "bearer"}
        if grant == "fb_exchange_token":
            short = p.get("fb_exchange_token", "")
            tok = w.tokens.get(short)
            if tok is None or tok.kind != "user":
                raise GraphError(190, "Invalid OAuth access token.", auth=True)
            return {"access_token": w.mint_long_lived_user_token(), "token_type": "bearer", "expires_in": 5183944}
        raise GraphError(100, "(#100) Unsupported grant_type", type_="OAuthException")

    # --------------------------------------------------------------------------------------------------- batch --

    def _batch(self, ctx: _Ctx) -> str:
        raw = ctx.req.params.get("batch")
        if not raw:
            raise GraphError(100, "(#100) The parameter batch is required", type_="OAuthException")
        try:
            items = json.loads(raw)
        except ValueError:
            raise GraphError(100, "(#100) param batch must be an array.", type_="OAuthException") from None
        if not isinstance(items, list):
            raise GraphError(100, "(#100) param batch must be an array.", type_="OAuthException")
        if len(items) > MAX_BATCH:
            raise GraphError(100, f"(#100) Too many requests in batch message. Maximum batch size is {MAX_BATCH}",
                             type_="OAuthException")
        include_headers = ctx.req.params.get("include_headers", "true").lower() not in ("false", "0")
        out: list[str] = []
        for pos, item in enumerate(items, start=1):
            if self.sim.faults.batch_item_null(pos):
                out.append("null")
                continue
            resp = self._batch_item(ctx, item)
            ctx.leads_served += resp.leads_served
            entry: dict[str, Any] = {"code": resp.status}
            if include_headers:
                headers = [{"name": k, "value": v} for k, v in resp.headers]
                headers += [{"name": "Content-Type", "value": BATCH_ITEM_CT},
                            {"name": "facebook-api-version", "value": resp.version or self.sc.api_version},
                            {"name": "Cache-Control", "value": "private, no-cache, no-store, must-revalidate"}]
                entry["headers"] = headers
            entry["body"] = resp.body.decode()
            out.append(json.dumps(entry, separators=(",", ":")))
        return "[" + ",".join(out) + "]"

    def _batch_item(self, ctx: _Ctx, item: Any) -> GraphResponse:
        if not isinstance(item, dict) or not isinstance(item.get("relative_url"), str):
            err = GraphError(100, "(#100) Each batch item needs a relative_url", type_="OAuthException")
            return self._error_response(err, self.sim.next_trace_id(), "batch_item", ctx, ctx.version)
        method = str(item.get("method", "GET")).upper()
        rel = item["relative_url"]
        path, _, qs = rel.partition("?")
        query = urllib.parse.parse_qsl(qs, keep_blank_values=True)
        params = dict(query)
        body = item.get("body")
        if isinstance(body, str) and body:
            params.update(urllib.parse.parse_qsl(body, keep_blank_values=True))
        token_in_query = "access_token" in dict(query)
        token = params.get("access_token") or ctx.req.token
        if "appsecret_proof" not in params and token == ctx.req.token and "appsecret_proof" in ctx.req.params:
            params["appsecret_proof"] = ctx.req.params["appsecret_proof"]
        if not path.startswith("/"):
            path = "/" + path
        version, _segs = self.split(path)
        if version is None and ctx.version:
            path = f"/{ctx.version}{path}"
        sub = GraphRequest(method, path, query, params, token, token_in_query, ctx.req.host, in_batch=True)
        resp = self.handle(sub, None)
        self.sim.count_batch_item(resp)
        return resp


class _Throttled(Exception):
    def __init__(self, code: int, minutes: int):
        super().__init__(code)
        self.code, self.minutes = code, minutes
