"""The SSRF guard and the one-POST sender (adapters/webhook_sender.py), and the receivers'
stand-alone verification of the signature the sender makes."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from chalicelib.adapters.webhook_sender import UnsafeUrl, check_url, post, signature_header
from receivers.billing_signature import verify_signature
from tests.support.receiver import Receiver


def resolving_to(*addresses: str) -> Callable[[str, int], list[str]]:
    def resolver(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolver


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.7",
        "172.16.3.4",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",  # instance metadata
        "169.254.10.10",
        "fd00:ec2::254",  # instance metadata over IPv6
        "::1",
        "::ffff:10.0.0.1",  # IPv4-mapped private
        "0.0.0.0",  # noqa: S104 (an address to refuse, not one we bind)
        "100.64.0.1",  # carrier-grade NAT: not global
    ],
)
def test_a_name_resolving_to_a_private_or_metadata_address_is_refused(address: str) -> None:
    with pytest.raises(UnsafeUrl, match="private, link-local or metadata"):
        check_url("https://hooks.example.com/x", local=False, resolver=resolving_to(address))


def test_one_bad_address_among_good_ones_is_enough_to_refuse() -> None:
    with pytest.raises(UnsafeUrl):
        check_url(
            "https://hooks.example.com/x",
            local=False,
            resolver=resolving_to("93.184.216.34", "10.0.0.1"),
        )


@pytest.mark.parametrize("host", ["a" * 64 + ".example.com", "a..example.com", ".example.com"])
def test_a_name_that_cannot_be_a_dns_name_is_refused_before_any_lookup(host: str) -> None:
    """The real resolver: IDNA refuses an empty or over-long label (UnicodeError, not
    OSError) before it asks DNS; that is an unsafe URL, not a crash."""
    with pytest.raises(UnsafeUrl, match="not a valid host name"):
        check_url(f"https://{host}/hook", local=False)


def test_public_https_passes_and_local_stages_also_take_http_127_0_0_1_only() -> None:
    check_url("https://hooks.example.com/x", local=False, resolver=resolving_to("93.184.216.34"))
    check_url("http://127.0.0.1:8123/hooks", local=True)
    with pytest.raises(UnsafeUrl, match="https"):
        check_url("http://127.0.0.1:8123/hooks", local=False)
    with pytest.raises(UnsafeUrl, match="https"):
        check_url("http://localhost:8123/hooks", local=True)


def test_a_redirect_is_a_failed_delivery_never_followed() -> None:
    receiver = Receiver().up()
    try:
        receiver.answer_status = 302
        answer = post(receiver.url, b"{}", {})
        assert answer.status == 302 and not answer.succeeded
        assert len(receiver.received) == 1
        receiver.answer_status = 204
        assert post(receiver.url, b"{}", {}).succeeded
    finally:
        receiver.down()
    refused = post(receiver.url, b"{}", {})  # the port is closed now
    assert refused.status is None and refused.error and not refused.succeeded


def test_a_receiver_that_answers_a_byte_at_a_time_is_cut_off_at_the_timeout() -> None:
    """The timeout is for the whole exchange, not for each socket read: a receiver that sends
    its answer a byte every 0.1 s (each read well within the timeout) is cut off when it runs
    out, so a drainer never holds the endpoint's lease past it."""
    import socket
    import threading
    import time

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def trickle() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            try:
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
                    connection.sendall(bytes([byte]))
                    time.sleep(0.1)
            except OSError:
                pass  # the sender hung up

    server = threading.Thread(target=trickle, daemon=True)
    server.start()
    started = time.monotonic()
    answer = post(f"http://127.0.0.1:{port}/hooks", b"{}", {}, timeout=0.5)
    took = time.monotonic() - started
    server.join(10)
    listener.close()
    assert not answer.succeeded and answer.status is None and answer.error, answer
    assert took < 1.5, took  # the whole answer would have taken about 4.5 s


def test_the_receivers_verify_what_the_sender_signs_and_nothing_else() -> None:
    body = json.dumps({"id": "evt_1", "type": "access.granted"}).encode()
    header = signature_header("whsec_abc", body, 1_800_000_000)
    assert verify_signature(body, header, "whsec_abc", now=1_800_000_010)
    assert not verify_signature(body, header, "whsec_other", now=1_800_000_010)
    assert not verify_signature(body + b" ", header, "whsec_abc", now=1_800_000_010)
    assert not verify_signature(body, header, "whsec_abc", now=1_800_000_000 + 301)  # stale
    assert not verify_signature(body, "v1=deadbeef", "whsec_abc", now=1_800_000_000)
