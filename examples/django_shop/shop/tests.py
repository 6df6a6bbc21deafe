"""Tests of the example shop.

`ShopPageTests` need no Switchboard: pages, the token endpoint, the chat link and the payment view's rules.

`SwitchboardIdentityTests` start the real server (`deno task start` from the repository, on a free port, with
a temp data dir) and check, over real sockets, that a token minted by Django makes a verified Switchboard
user: the push socket says who it is and follows `user:<id>`, an order paid in Django reaches its owner and
nobody else, and forged, expired or foreign tokens are refused before the upgrade. Every wait has a timeout,
so a missing server feature fails with the server's output instead of hanging.

Run: `python3 examples/django_shop/manage.py test shop` with Debian's python3 (/usr/bin/python3) and its
python3-django, python3-jwt and python3-websockets; `deno` on PATH, or DENO=/path/to/deno.
"""
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from decimal import Decimal
from pathlib import Path

import jwt
import websockets
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client, TestCase, override_settings
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatusCode

from .models import Order

# examples/django_shop/shop/tests.py → the repository root, which holds deno.json.
REPO_ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT = 30  # seconds for `deno task start` to print its start line
FRAME_TIMEOUT = 5  # seconds for any one frame, handshake or HTTP answer
STOP_TIMEOUT = 10  # seconds after SIGTERM before the server is killed

PASSWORD = "a-long-test-password"
JWT_SECRET = "shop-test-" + secrets.token_hex(24)  # 58 bytes; Switchboard wants at least 32
API_KEY = "shop-test-key-" + secrets.token_hex(8)
OTHER_SECRET = "not-the-shop-" + secrets.token_hex(24)


def server_environment():
    """What the server may see of our environment: what Deno needs, none of Switchboard's own variables.

    Switchboard reads every setting from an environment variable too (REDIS_URL, REQUIRE_AUTH, JWT_ISSUER, …);
    one set in CI's environment must not change the server this test starts.
    """
    keep = {"PATH", "HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "XDG_CACHE_HOME", "SSL_CERT_FILE"}
    return {
        name: value
        for name, value in os.environ.items()
        if name in keep or name.startswith(("DENO_", "NPM_CONFIG_")) or name.lower().endswith("_proxy")
    }


def claims_of(token):
    """The claims of a token the test minted itself (no need to check its signature)."""
    return jwt.decode(token, options={"verify_signature": False})


class SwitchboardProcess:
    """`deno task start` as a subprocess: started on port 0, stopped with SIGTERM (then SIGKILL if it hangs).

    Both output pipes are drained by threads all the time, so a chatty server never blocks on a full pipe, and
    the last lines are kept for failure messages.
    """

    def __init__(self, jwt_secret, api_key):
        self.jwt_secret = jwt_secret
        self.api_key = api_key
        self.port = None
        self.proc = None
        self.data_dir = None
        self._stdout = deque(maxlen=200)
        self._stderr = deque(maxlen=200)
        self._started = threading.Event()
        self._threads = []

    @property
    def http_url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.port}"

    def start(self):
        deno = os.environ.get("DENO") or shutil.which("deno")
        if not deno:
            raise RuntimeError("deno is not on PATH (or set DENO=/path/to/deno); Switchboard cannot start")
        self.data_dir = tempfile.mkdtemp(prefix="switchboard-shop-test-")
        command = [
            deno, "task", "--config", str(REPO_ROOT / "deno.json"), "start",
            "--port", "0", "--host", "127.0.0.1", "--data-dir", self.data_dir,
            "--jwt-secret", self.jwt_secret, "--api-key", self.api_key, "--log-level", "info",
        ]  # fmt: skip
        env = {**server_environment(), "NO_COLOR": "1", "DENO_NO_UPDATE_CHECK": "1"}
        # A session of its own: SIGTERM then reaches `deno task` and the server it runs, and nothing else.
        self.proc = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, self._stderr), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._started.wait(0.1):
            if self.proc.poll() is not None and not self._started.wait(0.5):  # the reader may lag behind
                self._fail_start(f"exited with code {self.proc.returncode} before its start line")
            if time.monotonic() > deadline:
                self._fail_start(f'printed no {{"event":"start"}} line within {START_TIMEOUT} s')
        if self.proc.poll() is not None:
            self._fail_start(f"exited with code {self.proc.returncode} right after starting")

    def _fail_start(self, what):
        self.stop()
        raise RuntimeError(f"Switchboard {what}\n{self.output()}")

    def _read_stdout(self):
        for line in self.proc.stdout:
            self._stdout.append(line.rstrip("\n"))
            if self._started.is_set():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            port = record.get("port") if isinstance(record, dict) and record.get("event") == "start" else None
            if isinstance(port, int):
                self.port = port
                self._started.set()

    @staticmethod
    def _drain(stream, lines):
        for line in stream:
            lines.append(line.rstrip("\n"))

    def output(self):
        """The server's stderr and the end of its stdout, for failure messages."""
        stderr = "\n".join(self._stderr) or "(empty)"
        stdout = "\n".join(list(self._stdout)[-40:]) or "(empty)"
        return f"--- Switchboard stderr ---\n{stderr}\n--- Switchboard stdout (last lines) ---\n{stdout}"

    def stop(self):
        """SIGTERM to the server's process group, a wait, and SIGKILL if it hangs. Safe to call twice."""
        if self.proc is not None and not self.proc.stdout.closed:
            if self.proc.poll() is None:
                self._signal(signal.SIGTERM)
                try:
                    self.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self._signal(signal.SIGKILL)
                    self.proc.wait(STOP_TIMEOUT)
            # The pipes end when every process of the group is gone: `deno task` may exit before its server.
            for thread in self._threads:
                thread.join(STOP_TIMEOUT)
            if any(thread.is_alive() for thread in self._threads):
                self._signal(signal.SIGKILL)
                for thread in self._threads:
                    thread.join(STOP_TIMEOUT)
            self.proc.stdout.close()
            self.proc.stderr.close()
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def _signal(self, signum):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signum)

    def publish_to_user(self, user_id, data):
        """`POST /api/publish` with `{"user", "data"}`, straight from the test (not through the shop)."""
        body = json.dumps({"user": str(user_id), "data": data}).encode("utf-8")
        request = urllib.request.Request(
            f"{self.http_url}/api/publish",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=FRAME_TIMEOUT) as response:
                return response.status, json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as err:
            return err.code, err.read(500).decode("utf-8", "replace")


def make_users():
    User = get_user_model()
    alice = User.objects.create_user("alice", password=PASSWORD)
    bob = User.objects.create_user("bob", password=PASSWORD)
    return alice, bob


def logged_in_client(testcase, username):
    client = Client()
    testcase.assertTrue(client.login(username=username, password=PASSWORD), f"{username} could not log in")
    return client


@override_settings(
    SWITCHBOARD_URL="http://switchboard.test",
    SWITCHBOARD_JWT_SECRET=JWT_SECRET,
    SWITCHBOARD_API_KEY=API_KEY,
)
class ShopPageTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.alice, cls.bob = make_users()
        cls.order_a = Order.objects.create(owner=cls.alice, total=Decimal("19.90"))

    def test_login_page_logs_a_user_in_and_sends_them_home(self):
        self.assertEqual(self.client.get("/login/").status_code, 200)
        response = self.client.post("/login/", {"username": "alice", "password": PASSWORD})
        self.assertRedirects(response, "/", fetch_redirect_response=False)
        self.assertEqual(self.client.get("/").status_code, 200)

    def test_home_page_embeds_the_widget_with_a_token_for_the_user(self):
        self.assertRedirects(self.client.get("/"), "/login/?next=/", fetch_redirect_response=False)
        client = logged_in_client(self, "alice")
        before = int(time.time())
        html = client.get("/").content.decode()
        self.assertIn('src="http://switchboard.test/widget.js"', html)
        self.assertIn('href="/chat/"', html)
        token = html.split('data-token="', 1)[1].split('"', 1)[0]
        claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
        self.assertEqual((claims["sub"], claims["name"]), (str(self.alice.pk), "alice"))
        self.assertTrue(before + 600 <= claims["exp"] <= int(time.time()) + 600, claims)

    def test_chat_link_sends_the_user_to_the_lobby_with_a_fresh_token_in_the_fragment(self):
        self.assertRedirects(self.client.get("/chat/"), "/login/?next=/chat/", fetch_redirect_response=False)
        location = logged_in_client(self, "alice").get("/chat/")["Location"]
        prefix = "http://switchboard.test/chat.html#room=lobby&token="
        self.assertTrue(location.startswith(prefix), location)
        claims = jwt.decode(location[len(prefix):], JWT_SECRET, algorithms=["HS256"])
        self.assertEqual((claims["sub"], claims["name"]), (str(self.alice.pk), "alice"))

    def test_token_endpoint_mints_a_short_lived_token_for_the_logged_in_user_only(self):
        self.assertEqual(self.client.get("/token/").status_code, 401)
        response = logged_in_client(self, "bob").get("/token/")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Cache-Control"], "no-store")
        body = response.json()
        claims = jwt.decode(body["token"], JWT_SECRET, algorithms=["HS256"])
        self.assertEqual((claims["sub"], claims["name"]), (str(self.bob.pk), "bob"))
        self.assertEqual(body["expiresAt"], claims["exp"] * 1000)
        self.assertTrue(590 <= claims["exp"] - time.time() <= 600, claims)
        with self.assertRaises(jwt.InvalidSignatureError):
            jwt.decode(body["token"], OTHER_SECRET, algorithms=["HS256"])

    def test_order_paid_takes_a_post_from_the_owner_only(self):
        alice = logged_in_client(self, "alice")
        self.assertEqual(alice.get(f"/orders/{self.order_a.pk}/paid/").status_code, 405)
        by_bob = logged_in_client(self, "bob").post(f"/orders/{self.order_a.pk}/paid/")
        self.assertEqual(by_bob.status_code, 404)
        anonymous = self.client.post(f"/orders/{self.order_a.pk}/paid/")
        self.assertEqual(anonymous.status_code, 302)
        self.order_a.refresh_from_db()
        self.assertEqual(self.order_a.status, Order.Status.PENDING)

    @override_settings(SWITCHBOARD_URL="http://127.0.0.1:9", SWITCHBOARD_TIMEOUT=2)
    def test_order_paid_stays_paid_when_switchboard_is_away(self):
        with self.assertLogs("shop.views", "WARNING") as logs:
            response = logged_in_client(self, "alice").post(f"/orders/{self.order_a.pk}/paid/")
        self.assertIn("was not notified", logs.output[0])
        self.assertEqual(response.status_code, 200)
        body = response.json()
        self.assertEqual((body["status"], body["notified"]), ("paid", False), body)
        self.assertIn("Could not reach Switchboard", body["error"])
        self.order_a.refresh_from_db()
        self.assertEqual(self.order_a.status, Order.Status.PAID)


class SwitchboardIdentityTests(TestCase):
    """The shop against a real Switchboard, over real sockets."""

    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = SwitchboardProcess(JWT_SECRET, API_KEY)
        cls.server.start()
        cls._switchboard_settings = override_settings(
            SWITCHBOARD_URL=cls.server.http_url,
            SWITCHBOARD_JWT_SECRET=JWT_SECRET,
            SWITCHBOARD_API_KEY=API_KEY,
        )
        cls._switchboard_settings.enable()
        try:
            super().setUpClass()
        except Exception:
            cls._switchboard_settings.disable()
            cls.server.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls._switchboard_settings.disable()
            cls.server.stop()

    @classmethod
    def setUpTestData(cls):
        cls.alice, cls.bob = make_users()
        cls.order_a = Order.objects.create(owner=cls.alice, total=Decimal("19.90"))

    def setUp(self):
        self.client_a = logged_in_client(self, "alice")
        self.client_b = logged_in_client(self, "bob")
        self.token_a = self.token_for(self.client_a)
        self.token_b = self.token_for(self.client_b)

    def token_for(self, client):
        response = client.get("/token/")
        self.assertEqual(response.status_code, 200, response.content)
        return response.json()["token"]

    def fail_with_server(self, message):
        # `from None`: the failure says what was expected; the timeout's traceback adds nothing.
        raise self.failureException(f"{message}\n{self.server.output()}") from None

    def socket_url(self, path, token, query=""):
        return f"{self.server.ws_url}{path}?token={urllib.parse.quote(token)}{query}"

    async def handshake(self, path, token, query=""):
        """`(socket, None)` when the socket opens, else `(None, HTTP status or the error)`."""
        try:
            url = self.socket_url(path, token, query)
            return await websockets.connect(url, open_timeout=FRAME_TIMEOUT, close_timeout=2), None
        except InvalidStatusCode as err:
            return None, err.status_code
        except (InvalidHandshake, OSError, asyncio.TimeoutError) as err:
            return None, err

    @contextlib.asynccontextmanager
    async def socket(self, path, token, query=""):
        """An open socket, or a test failure that says what the handshake got."""
        ws, refusal = await self.handshake(path, token, query)
        if ws is None:
            self.fail_with_server(f"{path}{query} with a valid token did not open: {refusal!r}")
        try:
            yield ws
        finally:
            await ws.close()

    async def refused_status(self, path, token, query=""):
        """The HTTP status of a handshake that must fail; a test failure when the socket opens."""
        ws, refusal = await self.handshake(path, token, query)
        if ws is not None:
            await ws.close()
            self.fail_with_server(f"{path}{query} opened a socket; it must be refused before the upgrade")
        if not isinstance(refusal, int):
            self.fail_with_server(f"{path}{query}: expected an HTTP refusal, got {refusal!r}")
        return refusal

    async def next_frame(self, ws, what):
        """The next JSON frame, or a failure after FRAME_TIMEOUT that names what was awaited."""
        try:
            raw = await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT)
        except asyncio.TimeoutError:
            raw, problem = None, f"no frame within {FRAME_TIMEOUT} s"
        except ConnectionClosed as err:
            raw, problem = None, f"the socket closed ({err.code} {err.reason!r})"
        if raw is None:
            self.fail_with_server(f"{problem}; expected {what}")
        try:
            return json.loads(raw)
        except (TypeError, ValueError):
            pass
        self.fail_with_server(f"expected {what} as a JSON frame, got {raw!r}")

    def expect(self, got, expected, what):
        """Fails, with the server's output, unless `got` holds the `expected` keys and values."""
        shown = {key: got.get(key) for key in expected} if isinstance(got, dict) else got
        if shown != expected:
            self.fail_with_server(f"{what}: expected {expected}, got {got!r}")

    async def expect_identity(self, ws, user, token):
        """The push socket's first frames: `auth` with the verified user, then `subscribed` to `user:<id>`."""
        auth = await self.next_frame(ws, f"the auth frame of {user.username}")
        self.expect(auth, {"type": "auth", "expiresAt": claims_of(token)["exp"] * 1000}, "the first frame")
        verified = {"id": str(user.pk), "name": user.username, "verified": True}
        self.expect(auth.get("user"), verified, "the auth frame's user")
        subscribed = await self.next_frame(ws, f"the subscribed frame of {user.username}")
        self.expect(subscribed, {"type": "subscribed", "topic": f"user:{user.pk}"}, "the second frame")

    async def test_paid_order_reaches_its_owner_and_nobody_else(self):
        async with self.socket("/ws/push", self.token_a, "&time=0") as ws_a, self.socket(
            "/ws/push", self.token_b, "&time=0"
        ) as ws_b:
            await self.expect_identity(ws_a, self.alice, self.token_a)
            await self.expect_identity(ws_b, self.bob, self.token_b)

            response = await sync_to_async(self.client_a.post)(f"/orders/{self.order_a.pk}/paid/")
            self.assertEqual(response.status_code, 200, response.content)
            answer = response.json()
            self.expect(answer, {"notified": True, "delivered": 1}, "the shop's answer to the payment")

            publication = await self.next_frame(ws_a, "the order update on alice's socket")
            update = {"type": "order", "order": self.order_a.pk, "status": "paid", "total": "19.90"}
            expected = {"type": "publication", "topic": f"user:{self.alice.pk}", "data": update}
            self.expect(publication, expected, "alice's next frame")

            # Barrier: alice's update has been fanned out; one for bob now must be bob's first publication.
            # Had alice's update leaked to bob, it would be ahead of this one on his socket.
            marker = {"type": "barrier", "nonce": secrets.token_hex(8)}
            status, body = await asyncio.to_thread(self.server.publish_to_user, self.bob.pk, marker)
            self.expect((status, body.get("delivered") if isinstance(body, dict) else body), (200, 1),
                        "POST /api/publish {user: bob} (status, delivered)")  # fmt: skip
            first = await self.next_frame(ws_b, "the barrier publication on bob's socket")
            expected = {"type": "publication", "topic": f"user:{self.bob.pk}", "data": marker}
            self.expect(first, expected, "bob's first publication (anything else leaked from alice)")

        order = await sync_to_async(Order.objects.get)(pk=self.order_a.pk)
        self.assertEqual(order.status, Order.Status.PAID)

    async def test_forged_expired_and_foreign_tokens_are_refused_before_the_upgrade(self):
        now = int(time.time())
        claims = {"sub": str(self.alice.pk), "name": "alice", "iat": now, "exp": now + 600}
        forged = jwt.encode(claims, OTHER_SECRET, algorithm="HS256")
        expired = jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, JWT_SECRET, algorithm="HS256")
        cases = [
            ("a token signed with another secret", forged, "&time=0", 401),
            ("a token that expired an hour ago", expired, "&time=0", 401),
            ("another user's channel in ?topics", self.token_a, f"&time=0&topics=user:{self.bob.pk}", 403),
        ]
        for what, token, query, status in cases:
            with self.subTest(what):
                got = await self.refused_status("/ws/push", token, query)
                self.expect(got, status, f"{what}: the HTTP status")

    async def test_chat_welcome_names_the_verified_user_whatever_name_is_asked(self):
        async with self.socket("/ws/chat/lobby", self.token_a, "&name=mallory") as ws:
            verified = {"id": str(self.alice.pk), "name": "alice", "verified": True}
            # Every socket with a token starts with `auth`; the room's welcome follows.
            auth = await self.next_frame(ws, "the auth frame on the chat socket")
            self.expect(auth, {"type": "auth", "user": verified}, "the chat socket's first frame")
            welcome = await self.next_frame(ws, "the chat welcome")
            self.expect(welcome, {"type": "welcome"}, "the chat socket's second frame")
            self.expect(welcome.get("you"), verified, "the welcome's you (?name=mallory must be ignored)")
