"""Hooks for fuzzing aisle with schemathesis (loaded through schemathesis.toml).

An Idempotency-Key makes the first request with it the only one that runs: a second,
different request with the same key is refused (422), as SPEC section 3 says. The fuzzer
draws keys from a small space and reuses them across unrelated requests, so every valid key
it draws is replaced by a fresh one. Invalid keys are left as drawn: those requests must
still be refused. The server's handling of a reused key is tested in
tests/it/http_idempotency.rs.
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"^[\x20-\x7e]{1,128}$")


@schemathesis.hook
def before_call(context, case, kwargs):
    """Every call, from every phase: a valid key drawn by the fuzzer becomes a fresh one."""
    headers = case.headers
    if headers and VALID_KEY.match(headers.get("Idempotency-Key", "")):
        headers["Idempotency-Key"] = uuid.uuid4().hex
