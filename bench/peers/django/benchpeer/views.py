"""The publish endpoint an origin API would expose: one send_event() per
event. `data` arrives as JSON text and is passed through unencoded
(json_encode=False), so subscribers get the benchmark's payload byte for byte."""

import json

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django_eventstream import send_event


def healthz(request):
    return HttpResponse("ok\n")


@csrf_exempt
def publish(request):
    if request.method != "POST":
        return HttpResponse(status=405)
    body = json.loads(request.body)
    events = body.get("events", [body])
    for e in events:
        send_event(e["channel"], e["event"], e["data"], json_encode=False)
    return JsonResponse({"published": len(events)}, status=202)
