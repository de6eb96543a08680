"""The trace answers what it answered before its fast paths, to the bit: on a varied journal
(tests/gateway/journal/varied.py), queried directly, through the worker's encoding, and as
`trace --json` prints them. Rebuild the kept answers only for a change meant to alter them:
`python -m tests.gateway.journal.varied`."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from gateway.ops import trace as ops
from tests.gateway.journal import varied


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    p = tmp_path_factory.mktemp("varied") / "journal.sqlite3"
    varied.build(p)
    return p


@pytest.fixture(scope="module")
def kept():
    return orjson.loads(varied.ANSWERS.read_bytes())


def test_direct_answers_are_the_kept_ones(path, kept):
    got = varied.answers(path)
    assert got.keys() == kept["answers"].keys()
    for name, answer in got.items():
        assert answer == kept["answers"][name], name


@pytest.mark.parametrize("name", list(varied.QUERIES))
def test_the_workers_answer_and_the_json_output_are_the_kept_ones(path, kept, name):
    kind, key, opts = varied.QUERIES[name]
    opts = dict(opts)
    limits = opts.pop("limits", None)
    found, span, code, error = ops.encoded(path, kind, key, opts, limits)
    assert code == "", error
    answer = orjson.loads(found)
    assert answer == kept["answers"][name]
    if answer is not None:
        assert hashlib.sha256(ops.as_json(answer).encode()).hexdigest() == kept["as_json_sha256"][name]
