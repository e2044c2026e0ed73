"""The per-client limits, shared by the SMTP acceptor processes through shared memory."""
from __future__ import annotations

import os

from ingest.collectors.limits import ClientLimits
from ingest.config import SMTPConfig


def test_sessions_of_one_client_count_across_processes():
    limits = ClientLimits(SMTPConfig(sessions_per_ip=3, max_sessions=5), processes=2)
    limits.bind(0)
    assert limits.enter("192.0.2.1") is None
    assert limits.enter("192.0.2.1") is None
    limits.bind(1)
    assert limits.enter("192.0.2.1") is None
    assert "too many sessions from 192.0.2.1 (3 open)" in limits.enter("192.0.2.1")
    assert limits.enter("192.0.2.2") is None
    assert limits.enter("192.0.2.3") is None
    assert "too many sessions open (5)" in limits.enter("192.0.2.4")
    assert limits.total == 5 and limits.open_here() == 3
    limits.leave("192.0.2.1")  # process 1's session ends
    assert limits.enter("192.0.2.1") is None


def test_a_dead_acceptors_sessions_are_forgotten():
    limits = ClientLimits(SMTPConfig(sessions_per_ip=2), processes=2)
    limits.bind(1)
    limits.enter("192.0.2.1")
    limits.enter("192.0.2.1")
    limits.bind(0)
    assert limits.enter("192.0.2.1") is not None
    limits.release(1)
    assert limits.total == 0
    assert limits.enter("192.0.2.1") is None


def test_a_forked_process_sees_the_same_counts():
    limits = ClientLimits(SMTPConfig(sessions_per_ip=2, messages_per_minute=3), processes=2)
    pid = os.fork()
    if pid == 0:  # the other acceptor
        try:
            limits.bind(1)
            limits.enter("198.51.100.7")
            limits.enter("198.51.100.7")
            for _ in range(3):
                limits.count_message("198.51.100.7")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    limits.bind(0)
    assert "2 open" in limits.enter("198.51.100.7")
    assert "limit 3 a minute" in limits.message_refusal("198.51.100.7")
    assert limits.message_refusal("198.51.100.8") is None


def test_the_minute_is_counted_per_second_and_forgotten():
    now = [5000.0]
    limits = ClientLimits(SMTPConfig(messages_per_minute=3), clock=lambda: now[0])
    for t in (5000.0, 5030.0, 5059.5):
        now[0] = t
        limits.count_message("192.0.2.1")
    assert limits.message_refusal("192.0.2.1")
    now[0] = 5060.5  # the first one is more than a minute old
    assert limits.message_refusal("192.0.2.1") is None
    limits.count_message("192.0.2.1")
    assert limits.message_refusal("192.0.2.1")


def test_a_full_table_forgets_quiet_clients_never_connected_ones():
    now = [100.0]
    limits = ClientLimits(SMTPConfig(sessions_per_ip=1, messages_per_minute=10, max_sessions=0),
                          clock=lambda: now[0], slots=8)
    for i in range(8):  # every slot: a client with a session open
        assert limits.enter(f"10.0.0.{i}") is None
    assert "too many clients" in limits.enter("10.0.1.1")
    for i in range(8):  # they all still count
        assert limits.enter(f"10.0.0.{i}") is not None
    limits.leave("10.0.0.3")
    assert limits.enter("10.0.1.1") is None  # took the slot of the client that left
    for i in (0, 1, 2, 4, 5, 6, 7):
        assert "1 open" in limits.enter(f"10.0.0.{i}")


def test_many_quiet_clients_reuse_slots():
    now = [100.0]
    limits = ClientLimits(SMTPConfig(messages_per_minute=5), clock=lambda: now[0], slots=16)
    for i in range(1000):
        ip = f"203.0.113.{i % 250}:{i}"
        assert limits.enter(ip) is None
        limits.count_message(ip)
        limits.leave(ip)
        now[0] += 1.0
    assert limits.total == 0


def test_a_lock_left_taken_by_a_dead_acceptor_is_freed():
    limits = ClientLimits(SMTPConfig(sessions_per_ip=5), processes=2)
    pid = os.fork()
    if pid == 0:
        limits._lock.sem.acquire()  # dies holding it
        os._exit(0)
    os.waitpid(pid, 0)
    limits.release(1)  # what the supervisor does when it restarts that acceptor
    assert limits.enter("192.0.2.9") is None
