"""A webhook receiver that verifies every delivery with an independent implementation: the
`standardwebhooks` package from PyPI (the reference library of the Standard Webhooks spec).

Environment:
  WEBHOOK_SECRET  the consumer's whsec_ secret
  PORT            port to listen on (127.0.0.1); 0 picks one
  FAIL_FIRST      answer 503 to this many valid deliveries first (default 0), to force retries

Prints `PORT <n>` once listening, then one JSON line per request:
  {"webhookId", "verified", "status", "eventType", "eventId", "body"}
An unverifiable request is answered 400 and reported with "verified": false.
"""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

hook = Webhook(os.environ["WEBHOOK_SECRET"])
fail_first = int(os.environ.get("FAIL_FIRST", "0"))
lock = threading.Lock()
seen = 0


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global seen
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k: v for k, v in self.headers.items()}
        try:
            event = hook.verify(body, headers)
            verified = True
        except WebhookVerificationError as e:
            event, verified = {"error": str(e)}, False
        with lock:
            if not verified:
                status = 400
            elif seen < fail_first:
                status = 503
            else:
                status = 204
            if verified:
                seen += 1
            line = {
                "webhookId": headers.get("webhook-id") or headers.get("Webhook-Id"),
                "verified": verified,
                "status": status,
                "eventType": event.get("eventType"),
                "eventId": event.get("id"),
                "body": body.decode(),
            }
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "0"))), Handler)
sys.stdout.write(f"PORT {server.server_address[1]}\n")
sys.stdout.flush()
server.serve_forever()
