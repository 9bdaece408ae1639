"""`mailbastion queue ...` on a real spool: list, show, retry, hold/release, delete, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import mailbastion.cli.queue  # noqa: F401  (adds the `queue` group)
from mailbastion.cli._common import main_group
from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.spool.layout import QueueState
from mailbastion.spool.record import RecipientState
from mailbastion.spool.writer import Spool

MESSAGE = b"From: alice@example.org\r\nSubject: queued for the cli\r\n\r\nbody\r\n"


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Spool]:
    config = tmp_path / "mailbastion.toml"
    config.write_text('[server]\ndata_dir = "data"\n[spool]\ndir = "q"\n')
    return config, Spool(tmp_path / "data" / "q", min_free_bytes=0)


def run(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main_group, ["queue", *args[:1], "-c", str(config), *args[1:]])
    return result.exit_code, result.stdout, result.stderr


async def _commit(spool: Spool, *rcpts: str) -> str:
    env = Envelope(sender=parse_address("alice@example.org"), recipients=tuple(parse_address(r) for r in rcpts))
    return await spool.commit(env, MESSAGE, client="c")


async def test_list_and_show(setup: tuple[Path, Spool]) -> None:
    config, spool = setup
    assert run(config, "list")[1].strip() == "Mail queue is empty"
    qid = await _commit(spool, "bob@example.net", "carol@example.net")
    code, out, _ = run(config, "list")
    assert code == 0
    assert qid in out and "<alice@example.org>" in out and "<bob@example.net>  pending" in out
    assert f"{len(MESSAGE):>9}" in out and "1 message(s)" in out
    code, out, _ = run(config, "list", "--json")
    row = json.loads(out.splitlines()[0])
    assert row["queue_id"] == qid and row["state"] == "incoming" and row["record"]["sender"] == "alice@example.org"
    code, out, _ = run(config, "show", qid)
    assert code == 0 and "state: incoming" in out and f'"queue_id": "{qid}"' in out
    assert "Subject: queued for the cli" in out and "body" not in out.split("Subject:")[1]


async def test_retry_hold_release_delete(setup: tuple[Path, Spool]) -> None:
    config, spool = setup
    qid = await _commit(spool, "bob@example.net")
    spool.layout.move(qid, QueueState.INCOMING, QueueState.DEFERRED)
    assert run(config, "hold", qid)[:2] == (0, f"{qid}: moved from deferred/ to hold/\n")
    assert spool.layout.find(qid) is QueueState.HOLD and "!" in run(config, "list")[1]
    assert run(config, "release", qid)[0] == 0 and spool.layout.find(qid) is QueueState.INCOMING
    spool.layout.move(qid, QueueState.INCOMING, QueueState.DEFERRED)
    assert run(config, "retry", qid)[:2] == (0, f"{qid}: moved from deferred/ to incoming/ for immediate delivery\n")
    assert spool.layout.load(QueueState.INCOMING, qid).recipients[0].status is RecipientState.PENDING
    assert run(config, "delete", qid)[:2] == (0, f"{qid}: deleted from incoming/\n")
    assert spool.layout.find(qid) is None


async def test_errors_are_one_line_and_exit_1(setup: tuple[Path, Spool]) -> None:
    config, spool = setup
    code, _, err = run(config, "show", "0123456789ABCDEF00")
    assert code == 1 and err == "mailbastion: 0123456789ABCDEF00: no such message in the queue\n"
    code, _, err = run(config, "delete", "../../etc/passwd")
    assert code == 1 and "not a queue id" in err
    qid = await _commit(spool, "bob@example.net")
    spool.layout.move(qid, QueueState.INCOMING, QueueState.ACTIVE)
    code, _, err = run(config, "delete", qid)
    assert code == 1 and "being delivered right now" in err
    assert spool.layout.find(qid) is QueueState.ACTIVE
    code, _, err = run(config, "release", qid)
    assert code == 1
    missing = CliRunner().invoke(main_group, ["queue", "list", "-c", str(config.parent / "nope.toml")])
    assert missing.exit_code == 1 and "configuration file not found" in missing.stderr


async def test_flush_moves_every_deferred_message(setup: tuple[Path, Spool]) -> None:
    config, spool = setup
    ids = [await _commit(spool, "bob@example.net") for _ in range(3)]
    for qid in ids[:2]:
        spool.layout.move(qid, QueueState.INCOMING, QueueState.DEFERRED)
    assert run(config, "flush")[:2] == (0, "2 deferred message(s) moved to incoming/ for immediate delivery\n")
    assert spool.layout.ids(QueueState.INCOMING) == sorted(ids) and spool.layout.ids(QueueState.DEFERRED) == []
