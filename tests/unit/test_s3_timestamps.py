"""lakehouse's S3 clients read the timestamps of a response with the standard library where botocore would
use dateutil: the same instants, for every form S3 sends."""

from __future__ import annotations

import datetime as dt

from botocore.parsers import DEFAULT_TIMESTAMP_PARSER
from hypothesis import given
from hypothesis import strategies as st

from lakehouse.storage import _timestamp

INSTANTS = st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC))


@given(
    instant=INSTANTS,
    form=st.sampled_from(
        [
            "%Y-%m-%dT%H:%M:%S.%fZ",  # a listing's LastModified (microseconds)
            "%Y-%m-%dT%H:%M:%S.000Z",  # S3's own (milliseconds)
            "%Y-%m-%dT%H:%M:%SZ",
            "%a, %d %b %Y %H:%M:%S GMT",  # a header's (HEAD, GET)
            "%Y-%m-%dT%H:%M:%S+00:00",
        ]
    ),
)
def test_the_same_instant_as_botocore(instant: dt.datetime, form: str) -> None:
    text = instant.strftime(form)
    ours, theirs = _timestamp(text), DEFAULT_TIMESTAMP_PARSER(text)
    assert ours == theirs and ours.utcoffset() == dt.timedelta(0)


def test_what_it_cannot_read_goes_to_botocore() -> None:
    assert _timestamp("1733472000") == DEFAULT_TIMESTAMP_PARSER("1733472000")  # epoch seconds
    assert _timestamp("2026-12-06T08:34:01.000Z") == dt.datetime(2026, 12, 6, 8, 34, 1, tzinfo=dt.UTC)
