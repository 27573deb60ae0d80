"""HTTP routes that providers call (serve.py mounts them): the inbound SMS route.

`/_clinicdesk/sms/inbound` takes either the HTTP adapter's JSON `{"from", "text", "id"}` with the
shared secret in `X-ClinicDesk-Secret`, or Twilio's signed form post (`X-Twilio-Signature`).
Anything unauthenticated gets 403 and touches nothing. The route only translates: the reply is
acted on by core.portal.replies.receive_sms in one transaction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.kernel.config import Settings
from core.messaging import sms_inbound
from core.portal import replies
from db.engine import Database

log = logging.getLogger("clinicdesk.webhooks")
SMS_PATH = "/_clinicdesk/sms/inbound"
MAX_BODY = 16_000


def _receive(database: Database, number: str, text: str, ref: str | None):
    with database.write() as session:
        return replies.receive_sms(session, from_number=number, body=text, provider_ref=ref)


def sms_route(database: Callable[[], Database], settings: Callable[[], Settings]) -> Route:
    async def inbound(request: Request) -> Response:
        config = settings().sms
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            return Response("too large", status_code=413)
        signature = request.headers.get("x-twilio-signature")
        if signature is not None:
            form = {k: str(v) for k, v in (await request.form()).items()}
            query = f"?{request.url.query}" if request.url.query else ""
            url = settings().base_url + SMS_PATH + query  # the address Twilio was given
            if not sms_inbound.twilio_signature_ok(url, form, signature, config.twilio_auth_token):
                return Response("signature does not match", status_code=403)
            number, text, ref = form.get("From", ""), form.get("Body", ""), form.get("MessageSid")
        else:
            secret = request.headers.get("x-clinicdesk-secret")
            if not sms_inbound.shared_secret_ok(secret, config.inbound_secret):
                return Response("unknown sender", status_code=403)
            try:
                data = json.loads(await request.body())
                number, text = str(data["from"]), str(data.get("text", ""))
                ref = str(data["id"]) if data.get("id") else None
            except (ValueError, KeyError, TypeError):
                return Response('send JSON {"from": …, "text": …, "id": …}', status_code=400)
        if not number:
            return Response("the sender's number is missing", status_code=400)
        outcome = await run_in_threadpool(_receive, database(), number, text, ref)
        log.info("SMS reply %s: %s", outcome.reply_id, outcome.outcome)
        if signature is not None:
            return Response(sms_inbound.twiml(outcome.answer), media_type="application/xml")
        return JSONResponse({"outcome": outcome.outcome, "reply": outcome.answer})

    return Route(SMS_PATH, inbound, methods=["POST"])
