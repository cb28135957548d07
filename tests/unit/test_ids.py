"""Ids: epoch and sequence round-trip, sort in sequence order, and refuse anything else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tocsin.ids import MAX_SEQ, BadId, Cursor, decode_id, encode_id, epoch_of

EPOCH = epoch_of("2026-11-28T01:34:46.388527094Z")
seqs = st.integers(min_value=0, max_value=MAX_SEQ)
epochs = st.text(min_size=1, max_size=40).map(epoch_of)


@given(epochs, seqs)
def test_round_trip(epoch: str, seq: int) -> None:
    notification_id = encode_id(epoch, seq)
    assert decode_id(notification_id) == Cursor(epoch, seq)


@given(epochs, seqs)
def test_contract_shape(epoch: str, seq: int) -> None:
    notification_id = encode_id(epoch, seq)
    assert notification_id.startswith("ntf_")
    assert len(notification_id) <= 40
    assert all(c.isascii() and (c.isalnum() or c in "_-") for c in notification_id)


@given(seqs, seqs)
def test_ids_sort_in_sequence_order_as_length_then_string(a: int, b: int) -> None:
    def key(seq: int) -> tuple[int, str]:
        text = encode_id(EPOCH, seq)
        return (len(text), text)

    assert (key(a) < key(b)) == (a < b)


def test_epoch_differs_between_stream_incarnations() -> None:
    assert epoch_of("2026-11-28T01:00:00.000000001Z") != epoch_of("2026-11-28T01:00:00.000000002Z")
    assert epoch_of("x") == epoch_of("x")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "ntf_",
        "12",
        "ntf_abc_1",  # epoch too short
        f"ntf_{EPOCH}_",  # no sequence
        f"ntf_{EPOCH}_00",  # zero, not canonical
        f"ntf_{EPOCH}_01",  # leading zero: not canonical
        f"ntf_{EPOCH}_A",  # upper case digit
        f"ntf_{EPOCH}1",  # no separator
        f"ntf_{EPOCH.upper()}_1",
        f"ntf_{EPOCH}_1\x00",
        f"ntf_{EPOCH}_1\n",
        f"ntf_{EPOCH}_" + "z" * 30,  # too long
        "ntf_" + "a" * 100,
        f"xtf_{EPOCH}_1",
    ],
)
def test_malformed_ids_are_refused(value: str) -> None:
    with pytest.raises(BadId):
        decode_id(value)


def test_sequence_beyond_64_bits_is_refused() -> None:
    with pytest.raises(BadId):
        decode_id(f"ntf_{EPOCH}_3w5e11264sgsg")
    assert decode_id(encode_id(EPOCH, MAX_SEQ)).seq == MAX_SEQ


@given(st.text(max_size=60))
def test_arbitrary_text_is_an_id_only_if_it_round_trips(value: str) -> None:
    try:
        cursor = decode_id(value)
    except BadId:
        return
    assert encode_id(cursor.epoch, cursor.seq) == value
