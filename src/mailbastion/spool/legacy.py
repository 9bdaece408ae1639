"""Upgrade of a spool written by earlier versions, where each entry was a directory
(`<state>/<id>/message.eml` + `record.json`), into one queue file per entry. Runs at queue manager
start, before any scan; a crash at any step is finished or undone by the next run:

    1. write `<state>/.<id>.mbq` (the queue file) and fsync it
    2. rename the old directory to `<state>/.<id>.legacy`
    3. rename `.<id>.mbq` to `<id>`, fsync the state directory, remove `.<id>.legacy`

Names starting with "." are never queue ids, so no scan sees the intermediate steps.
"""

from __future__ import annotations

import logging
import os
import shutil

from mailbastion.durable import fsync_dir, write_durably
from mailbastion.spool import queue_file
from mailbastion.spool.layout import QueueState, SpoolLayout, is_queue_id
from mailbastion.spool.record import QueueRecord, RecordError

log = logging.getLogger("mailbastion.queue")

MESSAGE_FILE = "message.eml"
RECORD_FILE = "record.json"


def migrate_legacy_entries(layout: SpoolLayout) -> int:
    """Convert every directory entry into a queue file; returns how many were converted. An entry whose
    record cannot be read is moved whole to corrupt/ (as a directory) for a human."""
    count = 0
    for state in QueueState:
        d = layout.state_dir(state)
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            continue
        for name in names:  # first finish or undo what an interrupted run left
            if name.startswith(".") and name.endswith(".legacy"):
                qid = name[1:-len(".legacy")]
                staged = d / f".{qid}.mbq"
                if not (d / qid).exists() and staged.exists():
                    os.rename(staged, d / qid)
                elif not (d / qid).exists():
                    os.rename(d / name, d / qid)  # step 1 never finished: back as it was
                    continue
                fsync_dir(d)
                shutil.rmtree(d / name, ignore_errors=True)
            elif name.startswith(".") and name.endswith(".mbq") and not (d / f"{name[:-4]}.legacy").exists():
                (d / name).unlink(missing_ok=True)  # step 1 interrupted; the directory is still in place
        for qid in os.listdir(d):
            if is_queue_id(qid) and (d / qid).is_dir():
                count += _convert(layout, state, qid)
    if count:
        log.warning("spool: converted %d entry(ies) from the directory layout to queue files", count)
    return count


def _convert(layout: SpoolLayout, state: QueueState, qid: str) -> int:
    d = layout.state_dir(state)
    old = d / qid
    try:
        record = QueueRecord.from_json((old / RECORD_FILE).read_bytes())
        message = (old / MESSAGE_FILE).read_bytes()
    except (RecordError, OSError) as exc:
        log.error("spool: legacy entry %s/%s unreadable (%s): left as a directory in corrupt/", state, qid, exc)
        if state is not QueueState.CORRUPT:
            os.rename(old, layout.state_dir(QueueState.CORRUPT) / qid)
        return 0
    staged = d / f".{qid}.mbq"
    write_durably(staged, queue_file.encode(record, message))
    os.rename(old, d / f".{qid}.legacy")
    os.rename(staged, d / qid)
    fsync_dir(d)
    shutil.rmtree(d / f".{qid}.legacy", ignore_errors=True)
    return 1
