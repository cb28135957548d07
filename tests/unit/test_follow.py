"""The follower's pure parts: reading delivery subjects and judging each delivery."""

from __future__ import annotations

from tocsin.follow import Delivery, Verdict, judge, parse_ack_subject

NS = 1764293894492123456


def test_reply_subjects_old_and_new_form() -> None:
    assert parse_ack_subject(f"$JS.ACK.TOCSIN.c1.1.42.7.{NS}.0") == Delivery(42, 7, NS)
    assert parse_ack_subject(f"$JS.ACK.dom.acchash.TOCSIN.c1.1.42.7.{NS}.0.rnd") == Delivery(
        42, 7, NS
    )
    assert parse_ack_subject(f"$JS.ACK.dom.acchash.TOCSIN.c1.1.42.7.{NS}.0") == Delivery(42, 7, NS)


def test_the_expected_delivery_is_handed_over() -> None:
    assert judge(Delivery(10, 1, NS), expected_cseq=1, next_seq=10) is Verdict.DELIVER
    assert judge(Delivery(15, 2, NS), expected_cseq=2, next_seq=11) is Verdict.DELIVER


def test_a_consumer_sequence_gap_resets() -> None:
    assert judge(Delivery(12, 3, NS), expected_cseq=2, next_seq=11) is Verdict.RESET


def test_an_already_delivered_message_is_skipped() -> None:
    assert judge(Delivery(9, 1, NS), expected_cseq=1, next_seq=10) is Verdict.SKIP
