"""The outbox: with the gateway down, a submitted message is committed to our own spool (250 queued as ...)
and relayed once the gateway is back; nothing is lost. Real processes: `serve --role internal` (the MDA,
directory and submission) and, later, `serve --role gateway` from the same configuration, over the
loopback mutual-TLS relay hop, to a remote MX of ours found through the loopback DNS."""

from __future__ import annotations

from pathlib import Path

from submission_world import ALICE, PASSWORD, World, deployment_with_remote_mx, message, publish_dkim

from mailbastion.spool.layout import SpoolLayout


def test_gateway_down_the_outbox_keeps_the_message_and_relays_it_later(tmp_path: Path) -> None:
    with deployment_with_remote_mx(tmp_path, (ALICE,)) as (d, dns, sink):
        publish_dkim(d, dns)
        d.start(role="internal")  # no gateway: its relay listener is closed
        try:
            world = World(d, dns, sink)
            with world.connect("implicit") as s:
                s.login(ALICE, PASSWORD)
                s.mail(ALICE)
                s.rcpt("bob@remote.test")
                code, text = s.data(message("while the gateway restarts"))
            assert code == 250 and b"queued as" in text, (code, text)
            queue_id = text.decode().rsplit(" ", 1)[-1]
            assert SpoolLayout(d.root / "spool-submission").find(queue_id) is not None  # on disk, in our outbox
            with d.also_serving("gateway"):
                got = world.wait_at_sink(lambda m: b"while the gateway restarts" in m.content)
            assert got.mail_from == ALICE
            assert all(ok for _, ok in world.dkim_verify(got.content))
        finally:
            d.stop()
