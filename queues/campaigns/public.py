"""
The public endpoints recipients reach from their mail, on DELIVERYHUB_PUBLIC_URL: no login, no cookie, no CSRF token.

- `/u/<token>` — one-click unsubscribe (RFC 8058). GET shows a page with a button and changes nothing (mail
  scanners follow links); POST (the receiver's one-click request, body `List-Unsubscribe=One-Click`, or that
  button) unsubscribes at once, idempotently, answering 200 without a redirect. A tampered or unknown token is a
  404 and changes nothing.
- `/t/o/<token>.gif` — the open pixel of a tracked campaign; `/t/c/<token>/<signature>?u=<url>` — a tracked link,
  redirecting only to a URL signed for that message (no open redirect).
"""

import base64

from django.http import Http404, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from deliveryhub.middleware import client_ip

from . import services, tokens

ONE_CLICK = "One-Click"
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _message(token):
    message_uuid = tokens.message_uuid_from_token(token)
    message = services.campaign_message(message_uuid) if message_uuid is not None else None
    if message is None:
        raise Http404("This link is not valid.")
    return message


@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    message = _message(token)
    context = {
        "message": message,
        "campaign": message.content.campaign,
        "token": token,
        "address": message.rcpt_to,
        "is_test": message.content.is_test,
    }
    if request.method == "GET":
        return render(request, "queues/campaigns/unsubscribe.html", context)
    if request.POST.get("List-Unsubscribe") != ONE_CLICK:
        return HttpResponseBadRequest(
            "A one-click unsubscribe request carries List-Unsubscribe=One-Click.", content_type="text/plain"
        )
    services.unsubscribe(message, via="https")
    return render(request, "queues/campaigns/unsubscribed.html", context)


@never_cache
@require_GET
def open_pixel(request, token):
    message = _message(token)
    services.record_open(message, client_ip=client_ip(request), user_agent=request.headers.get("User-Agent", ""))
    return HttpResponse(PIXEL, content_type="image/gif")


@never_cache
@require_GET
def click(request, token, signature):
    url = request.GET.get("u", "")
    if not url.startswith(("https://", "http://")) or not tokens.click_signature_ok(token, url, signature):
        raise Http404("This link is not valid.")
    message = _message(token)
    services.record_click(message, url, client_ip=client_ip(request), user_agent=request.headers.get("User-Agent", ""))
    return HttpResponseRedirect(url)
