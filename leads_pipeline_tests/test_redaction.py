"""The one redaction policy (``lib.graph.redaction.redact``) gives one answer whatever the order of the secrets.

Secrets used to be replaced one after the other, longest first, and equal lengths in the order of a ``set`` — which
follows the string hash seed, so it changed from process to process. Two secrets overlapping in a text then left a
different piece of one of them per process (a flaky test, and a leak). Each case runs in fresh interpreters with
different ``PYTHONHASHSEED`` values, which is what made the old code flip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from leads_pipeline.lib.graph.redaction import REDACTED, redact

_SCRIPT = """
import json, sys
from leads_pipeline.lib.graph.redaction import redact
text, secrets = json.loads(sys.argv[1])
print(json.dumps(redact(text, secrets)))
"""


def _redact_with_seed(seed: int, text: str, secrets: list[str]) -> str:
    env = {**os.environ, "PYTHONHASHSEED": str(seed)}
    out = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps([text, secrets])], env=env, check=True,
                         capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)


def test_overlapping_secrets_are_masked_whole_and_the_same_in_every_process():
    # Equal lengths, overlapping in the text: "abcdef1" and "bcdef12" share "bcdef1".
    text = "token xabcdef12y then bcdef12 alone"
    secrets = ["abcdef1", "bcdef12", "qwerty9", "werty98"]
    results = {_redact_with_seed(seed, text, secrets) for seed in range(8)}
    assert results == {f"token x{REDACTED}y then {REDACTED} alone"}


def test_no_piece_of_any_secret_survives():
    text = "a=Zq9xYw7v-Zq9xYw7v|q9xYw7vP and Zq9xYw7vP"
    out = redact(text, {"Zq9xYw7v", "q9xYw7vP", "short", None, ""})
    assert "q9xYw7v" not in out and "Zq9" not in out
    assert out.count(REDACTED) == 4  # adjacent, not overlapping, occurrences stay separate masks
    assert redact("nothing here", ["secret-value"]) == "nothing here"
    assert redact("short ones stay", ["stay"]) == "short ones stay"  # under MIN_SECRET_LENGTH
