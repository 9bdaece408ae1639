"""Administrator pages of the system: the ten measures, the queue, the audit log, our DNS records.

    GET  /admin                      the dashboard (last results at once; a refresh starts when stale)
    POST /admin/recheck              run every probe now and show the results
    GET  /admin/queue                the first 200 entries (postqueue -p); POST /admin/queue/<id>/<op>
    GET  /admin/audit?before=SEQ     50 records a page, newest first; POST /admin/audit/verify walks the chain
    GET  /admin/dns                  the records to publish; POST /admin/dns/check looks them up (read-only)

Queue operations are those of `mailbastion queue` (spool/control.py) and, unlike the command line, each
one is an audit record: every administrator action taken here is.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mailbastion.measures.board import TITLES
from mailbastion.measures.dns import dns_findings
from mailbastion.portal.auth import Principal, require
from mailbastion.portal.render import ADMIN, page

__all__ = ["audit_log", "audit_verify", "dashboard", "dns_page", "queue_action", "queue_page", "recheck"]

QUEUE_SHOWN = 200
AUDIT_PAGE = 50
QUEUE_OPS = ("retry", "hold", "release", "delete")


def _dashboard(request: Request, **extra: Any) -> Response:
    board = request.app.state.ctx.measures
    results = [board.results[n] for n in sorted(TITLES)]
    return page(request, "dashboard.html", results=results, refreshing=board.is_stale and not board.closed, **extra)


@require(ADMIN)
async def dashboard(request: Request) -> Response:
    board = request.app.state.ctx.measures
    if board.is_stale:
        board.refresh_soon()
    return _dashboard(request)


@require(ADMIN)
async def recheck(request: Request) -> Response:
    board = request.app.state.ctx.measures
    await board.refresh()
    return _dashboard(request)


def _when(ts: float | None) -> str:
    return "-" if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@require(ADMIN)
async def queue_page(request: Request) -> Response:
    ctx = request.app.state.ctx

    def read() -> list[Any]:
        return list(itertools.islice(ctx.queue.entries(), QUEUE_SHOWN + 1))

    entries = await asyncio.to_thread(read)
    return page(request, "queue.html", entries=entries[:QUEUE_SHOWN], more=len(entries) > QUEUE_SHOWN, when=_when,
                ops=QUEUE_OPS)


@require(ADMIN)
async def queue_action(request: Request) -> Response:
    from mailbastion.spool.control import QueueControlError

    ctx = request.app.state.ctx
    who: Principal = request.state.principal
    qid, op = request.path_params["qid"], request.path_params["op"]
    if op not in QUEUE_OPS:
        return page(request, "notice.html", 404, title="Not found", text="No such queue operation.")
    reason = str(request.state.form.get("reason", "")).strip()[:500]
    try:
        # Audited first: an action that cannot be recorded is not taken.
        await asyncio.to_thread(ctx.audit.record, f"queue.{op}", actor=who.actor, subject=f"queue:{qid}", reason=reason)
        await asyncio.to_thread(getattr(ctx.queue, op), qid)
    except (QueueControlError, OSError) as exc:
        return page(request, "notice.html", 409, title="Queue", text=str(exc), link="/admin/queue")
    return RedirectResponse("/admin/queue?done=queue", status_code=303)


@require(ADMIN)
async def audit_log(request: Request) -> Response:
    return await _audit(request, None)


@require(ADMIN)
async def audit_verify(request: Request) -> Response:
    ctx = request.app.state.ctx
    result = await asyncio.to_thread(ctx.audit.verify)
    return await _audit(request, result)


async def _audit(request: Request, verified: object) -> Response:
    from mailbastion.audit.chain import load_details
    from mailbastion.audit.log import EVENTS

    ctx = request.app.state.ctx
    before = request.query_params.get("before", "")
    subject = request.query_params.get("subject", "").strip()[:320]
    query = select(EVENTS).order_by(EVENTS.c.seq.desc()).limit(AUDIT_PAGE + 1)
    if before.isdigit():
        query = query.where(EVENTS.c.seq < int(before))
    if subject:
        query = query.where(EVENTS.c.subject == subject)

    def read() -> list[Any]:
        with ctx.audit.engine.connect() as conn:
            return list(conn.execute(query).all())

    rows = await asyncio.to_thread(read)
    events = [{"seq": r.seq, "time": r.time, "actor": r.actor, "action": r.action, "subject": r.subject,
               "reason": r.reason, "details": dict(load_details(r.details)), "hash": r.hash}
              for r in rows[:AUDIT_PAGE]]
    head = await asyncio.to_thread(ctx.audit.head)
    return page(request, "audit.html", events=events, head=head, verified=verified, subject=subject,
                next_before=events[-1]["seq"] if len(rows) > AUDIT_PAGE else "")


@require(ADMIN)
async def dns_page(request: Request) -> Response:
    from mailbastion.auth.keys import KeyStore
    from mailbastion.domain_dns.records import load_mx_certificate, mta_sts_policy, records_for

    ctx = request.app.state.ctx
    s = ctx.settings
    domains = await asyncio.to_thread(ctx.directory.list_domains)

    def build() -> dict[str, list[Any]]:
        store = KeyStore(s.path(s.auth.dkim_keys_dir))
        certs = load_mx_certificate(s.path(s.tls.cert))
        return {d: records_for(d, mx_host=s.server.hostname, keys=store.published(d),
                               report_address=s.auth.report_address, mx_certificates=certs,
                               mta_sts_mode=s.portal.mta_sts_mode) for d in domains}

    records = await asyncio.to_thread(build)
    findings = None
    if request.method == "POST":
        findings = await dns_findings(s, domains)
    policy = mta_sts_policy([s.server.hostname], mode=s.portal.mta_sts_mode)
    return page(request, "dns.html", records=records, findings=findings, policy=policy)
