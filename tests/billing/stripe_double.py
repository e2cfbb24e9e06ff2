"""A loopback stand-in for api.stripe.com, for the real `stripe` library.

The project's code runs unchanged: settings.STRIPE_API_BASE points the SDK at
this server, which answers with objects built from Stripe's own examples
(tests/fixtures/stripe/, copied from stripe/openapi's fixtures3.json) and
records every request with its decoded parameters, so tests can assert exactly
what was sent. It runs in a thread of the test process and, because it is a
real socket, also answers a Celery worker process started by a test.

Faults are scripted per path prefix: `fail(...)` answers the next N matching
requests with an error (500, 429, a refused card...), `delay(...)` holds them
longer than the client's timeout.
"""

import copy
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

SERVE_POLL_SECONDS = 0.02
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "stripe"


def fixture(name: str) -> dict:
    """Stripe's example object of a resource, e.g. fixture("subscription")."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def decode_form(body: str) -> dict:
    """Stripe's form encoding (a[b][0][c]=v) back into nested dicts and lists."""
    root: dict = {}
    for name, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", name)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node):
    if not isinstance(node, dict):
        return node
    if node and all(key.isdigit() for key in node):
        return [_lists(node[key]) for key in sorted(node, key=int)]
    return {key: _lists(value) for key, value in node.items()}


def error_body(kind: str, message: str, **extra) -> dict:
    """Stripe's error envelope (the `error` object of its API reference)."""
    return {"error": {"type": kind, "message": message, **extra}}


CARD_DECLINED = (
    402,
    error_body("card_error", "Your card was declined.", code="card_declined", decline_code="generic_decline"),
)
SERVER_ERROR = (500, error_body("api_error", "Something went wrong on Stripe's end."))
RATE_LIMITED = (429, error_body("invalid_request_error", "Too many requests.", code="rate_limit"))


@dataclass
class Recorded:
    method: str
    path: str
    params: dict
    headers: dict


@dataclass
class _Fault:
    method: str
    prefix: str
    remaining: int
    status: int = 0
    body: dict = field(default_factory=dict)
    seconds: float = 0.0


class StripeDouble:
    def __init__(self):
        self.requests: list[Recorded] = []
        self.customers: dict[str, dict] = {}
        self.products: dict[str, dict] = {}
        self.prices: dict[str, dict] = {}
        self.meters: dict[str, dict] = {}
        self.meter_events: dict[str, dict] = {}  # identifier -> event
        self.subscriptions: dict[str, dict] = {}
        self.checkout_sessions: dict[str, dict] = {}
        self._idempotent: dict[str, tuple[int, dict]] = {}
        self._faults: list[_Fault] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        # shutdown() waits for serve_forever's next poll: 0.5 s by default, paid
        # at the teardown of every test using the double. A short poll costs
        # an idle thread 50 wake-ups a second.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": SERVE_POLL_SECONDS}, daemon=True
        )

    def start(self) -> "StripeDouble":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # Scripting ----------------------------------------------------------------

    def fail(self, method: str, prefix: str, response: tuple[int, dict], times: int = 1) -> None:
        status, body = response
        with self._lock:
            self._faults.append(_Fault(method, prefix, times, status=status, body=body))

    def delay(self, method: str, prefix: str, seconds: float, times: int = 1) -> None:
        with self._lock:
            self._faults.append(_Fault(method, prefix, times, seconds=seconds))

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_test{next(self._ids):06d}"

    def add_subscription(
        self,
        *,
        customer: str,
        price_ids: list[str],
        status: str = "active",
        period_start: int,
        period_end: int,
        metadata: dict | None = None,
        cancel_at_period_end: bool = False,
        ended_at: int | None = None,
        created: int | None = None,
    ) -> dict:
        """Stripe's example subscription, with its items on the given prices."""
        subscription = fixture("subscription")
        subscription_id = self.new_id("sub")
        item_template = subscription["items"]["data"][0]
        items = []
        for price_id in price_ids:
            item = copy.deepcopy(item_template)
            item.update(
                id=self.new_id("si"),
                subscription=subscription_id,
                current_period_start=period_start,
                current_period_end=period_end,
            )
            item["price"]["id"] = price_id
            items.append(item)
        subscription.update(
            id=subscription_id,
            customer=customer,
            status=status,
            metadata=metadata or {},
            cancel_at_period_end=cancel_at_period_end,
            cancel_at=None,
            canceled_at=ended_at,
            ended_at=ended_at,
            created=created or period_start,
            start_date=period_start,
        )
        subscription["items"].update(data=items, url=f"/v1/subscription_items?subscription={subscription_id}")
        self.subscriptions[subscription_id] = subscription
        return subscription

    def update_subscription(self, subscription_id: str, **changes) -> dict:
        """Change top-level fields (status, cancel_at_period_end, ended_at...), as Stripe would."""
        subscription = self.subscriptions[subscription_id]
        subscription.update(changes)
        return subscription

    def requests_to(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]

    # Routing ------------------------------------------------------------------

    def _handler(self):
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _serve(self, method):
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                params = decode_form(body if method == "POST" else split.query)
                headers = {name.lower(): value for name, value in self.headers.items()}
                double.requests.append(Recorded(method, split.path, params, headers))
                status, answer = double._answer(method, split.path, params, headers)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Request-Id", f"req_{next(double._ids)}")
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

            def do_DELETE(self):
                self._serve("DELETE")

        return Handler

    def _fault_for(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.method == method and path.startswith(fault.prefix):
                    fault.remaining -= 1
                    return fault
        return None

    def _answer(self, method: str, path: str, params: dict, headers: dict) -> tuple[int, dict]:
        fault = self._fault_for(method, path)
        if fault is not None and fault.seconds:
            time.sleep(fault.seconds)
        elif fault is not None:
            return fault.status, fault.body
        key = headers.get("idempotency-key")
        if key and method == "POST":
            with self._lock:
                if key in self._idempotent:
                    return self._idempotent[key]  # Stripe replays the first answer
        answer = self._route(method, path, params)
        if key and method == "POST" and answer[0] < 500:
            with self._lock:
                self._idempotent[key] = answer
        return answer

    def _route(self, method: str, path: str, params: dict) -> tuple[int, dict]:
        routes = [
            ("POST", r"/v1/customers", self._create_customer),
            ("POST", r"/v1/customers/(?P<id>[^/]+)", self._update_customer),
            ("GET", r"/v1/products/(?P<id>[^/]+)", self._get_product),
            ("POST", r"/v1/products", self._create_product),
            ("POST", r"/v1/products/(?P<id>[^/]+)", self._update_product),
            ("GET", r"/v1/prices", self._list_prices),
            ("POST", r"/v1/prices", self._create_price),
            ("GET", r"/v1/billing/meters", self._list_meters),
            ("POST", r"/v1/billing/meters", self._create_meter),
            ("POST", r"/v1/billing/meter_events", self._create_meter_event),
            ("GET", r"/v1/billing/meters/(?P<id>[^/]+)/event_summaries", self._list_meter_event_summaries),
            ("POST", r"/v1/checkout/sessions", self._create_checkout_session),
            ("GET", r"/v1/checkout/sessions/(?P<id>[^/]+)", self._get_checkout_session),
            ("POST", r"/v1/billing_portal/sessions", self._create_portal_session),
            ("GET", r"/v1/subscriptions/(?P<id>[^/]+)", self._get_subscription),
            ("GET", r"/v1/subscriptions", self._list_subscriptions),
            ("DELETE", r"/v1/subscriptions/(?P<id>[^/]+)", self._cancel_subscription),
        ]
        for route_method, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if route_method == method and match:
                return handler(params, **match.groupdict())
        return 404, error_body("invalid_request_error", f"Unrecognized request URL ({method}: {path}).")

    def _missing(self, kind: str, object_id: str) -> tuple[int, dict]:
        return 404, error_body(
            "invalid_request_error", f"No such {kind}: '{object_id}'", code="resource_missing", param="id"
        )

    def _create_customer(self, params):
        customer = fixture("customer")
        customer.update(id=self.new_id("cus"), email=params.get("email"), metadata=params.get("metadata", {}))
        self.customers[customer["id"]] = customer
        return 200, customer

    def _update_customer(self, params, id):
        if id not in self.customers:
            return self._missing("customer", id)
        self.customers[id].update({name: params[name] for name in ("email", "name") if name in params})
        return 200, self.customers[id]

    def _get_product(self, params, id):
        return (200, self.products[id]) if id in self.products else self._missing("product", id)

    def _create_product(self, params):
        product = fixture("product")
        product.update(id=params.get("id") or self.new_id("prod"), name=params["name"], active=True)
        product["metadata"] = params.get("metadata", {})
        self.products[product["id"]] = product
        return 200, product

    def _update_product(self, params, id):
        if id not in self.products:
            return self._missing("product", id)
        self.products[id].update(name=params.get("name", self.products[id]["name"]), active=True)
        return 200, self.products[id]

    def _list(self, objects: list[dict], url: str) -> tuple[int, dict]:
        return 200, {"object": "list", "data": objects, "has_more": False, "url": url}

    def _list_prices(self, params):
        keys = set(params.get("lookup_keys", []))
        return self._list([p for p in self.prices.values() if p["lookup_key"] in keys], "/v1/prices")

    def _create_price(self, params):
        price = fixture("price")
        recurring = {**price["recurring"], **params.get("recurring", {})}
        recurring.setdefault("meter", None)
        price.update(
            id=self.new_id("price"),
            product=params["product"],
            currency=params["currency"],
            lookup_key=params.get("lookup_key"),
            metadata=params.get("metadata", {}),
            recurring=recurring,
            unit_amount=int(params["unit_amount"]) if "unit_amount" in params else None,
            unit_amount_decimal=params.get("unit_amount_decimal", params.get("unit_amount")),
        )
        self.prices[price["id"]] = price
        return 200, price

    def _list_meters(self, params):
        return self._list(list(self.meters.values()), "/v1/billing/meters")

    def _create_meter(self, params):
        meter = fixture("billing.meter")
        meter.update(
            id=self.new_id("mtr"), event_name=params["event_name"], display_name=params["display_name"]
        )
        meter["customer_mapping"] = params["customer_mapping"]
        meter["value_settings"] = params["value_settings"]
        self.meters[meter["id"]] = meter
        return 200, meter

    def _create_meter_event(self, params):
        event = fixture("billing.meter_event")
        event.update(
            event_name=params["event_name"],
            identifier=params["identifier"],
            payload=params["payload"],
            timestamp=int(params["timestamp"]),
        )
        if params["identifier"] in self.meter_events:
            # Stripe refuses a second event with an identifier it has seen.
            return 400, error_body(
                "invalid_request_error",
                "An event already exists with identifier " + params["identifier"],
                code="duplicate_meter_event",
            )
        self.meter_events[params["identifier"]] = event
        return 200, event

    def _list_meter_event_summaries(self, params, id):
        """One summary of the customer's events in [start_time, end_time), as
        Stripe answers without a value_grouping_window."""
        if id not in self.meters:
            return self._missing("billing.meter", id)
        start, end = int(params["start_time"]), int(params["end_time"])
        event_name = self.meters[id]["event_name"]
        total = sum(
            float(event["payload"]["value"])
            for event in self.meter_events.values()
            if event["event_name"] == event_name
            and event["payload"]["stripe_customer_id"] == params["customer"]
            and start <= event["timestamp"] < end
        )
        summary = fixture("billing.meter_event_summary")
        summary.update(
            id=self.new_id("mtrusg"), meter=id, start_time=start, end_time=end, aggregated_value=total
        )
        return self._list([summary], f"/v1/billing/meters/{id}/event_summaries")

    def _create_checkout_session(self, params):
        session = fixture("checkout.session")
        session_id = self.new_id("cs")
        session.update(
            id=session_id,
            mode=params["mode"],
            customer=params.get("customer"),
            client_reference_id=params.get("client_reference_id"),
            metadata=params.get("metadata", {}),
            success_url=params["success_url"],
            cancel_url=params.get("cancel_url"),
            status="open",
            subscription=None,
            url=f"https://checkout.stripe.com/c/pay/{session_id}",
        )
        self.checkout_sessions[session_id] = session
        return 200, session

    def _get_checkout_session(self, params, id):
        if id not in self.checkout_sessions:
            return self._missing("checkout.session", id)
        return 200, self.checkout_sessions[id]

    def _create_portal_session(self, params):
        session = fixture("billing_portal.session")
        session_id = self.new_id("bps")
        session.update(
            id=session_id,
            customer=params["customer"],
            return_url=params.get("return_url"),
            flow=params.get("flow_data"),
            url=f"https://billing.stripe.com/p/session/{session_id}",
        )
        return 200, session

    def _get_subscription(self, params, id):
        if id not in self.subscriptions:
            return self._missing("subscription", id)
        return 200, self.subscriptions[id]

    def _cancel_subscription(self, params, id):
        """Ends it now; a second cancel is refused, as Stripe refuses it."""
        if id not in self.subscriptions:
            return self._missing("subscription", id)
        subscription = self.subscriptions[id]
        if subscription["status"] == "canceled":
            return 400, error_body(
                "invalid_request_error", f"A canceled subscription can only update its metadata: {id}"
            )
        now = int(time.time())
        subscription.update(status="canceled", canceled_at=now, ended_at=now)
        return 200, subscription

    def _list_subscriptions(self, params):
        found = [s for s in self.subscriptions.values() if s["customer"] == params.get("customer")]
        return self._list(sorted(found, key=lambda s: -s["created"]), "/v1/subscriptions")
