"""Rate-limit headers (JSON strings) become a wait in seconds and a usage percentage."""

from __future__ import annotations

import json

from leads_pipeline.lib.graph import Usage, parse_usage
from leads_pipeline_tests.graph_fixtures import sample


def test_meta_doc_sample_headers():
    usage = parse_usage(sample("headers_rate_limit__meta_rate_limit_doc"))
    assert usage.max_percent == 97  # the pages BUC entry's call_count beats X-App-Usage's 28
    assert usage.wait_seconds == 0 and usage.wait_type is None


def test_buc_wait_is_minutes_times_sixty_max_over_entries():
    value = {
        "111": [{"type": "pages", "call_count": 40, "total_cputime": 5, "total_time": 5,
                 "estimated_time_to_regain_access": 2}],
        "222": [{"type": "ads_management", "call_count": 10, "estimated_time_to_regain_access": 0},
                {"type": "leadgen", "call_count": 100, "total_cputime": 12, "total_time": 30,
                 "estimated_time_to_regain_access": 7}],
    }
    usage = parse_usage({"X-Business-Use-Case-Usage": json.dumps(value)})
    assert usage == Usage(max_percent=100, wait_seconds=420, wait_type="leadgen")


def test_header_names_are_case_insensitive_and_app_usage_counts():
    usage = parse_usage({"X-APP-USAGE": '{"call_count":12,"total_time":91,"total_cputime":3}'})
    assert usage.max_percent == 91 and usage.wait_seconds == 0


def test_malformed_headers_are_ignored_not_fatal():
    usage = parse_usage({"x-app-usage": "{not json", "x-business-use-case-usage": '{"1": "oops", "2": [3, null]}'})
    assert usage == Usage()
    assert parse_usage(None) == Usage() and parse_usage({}) == Usage()
