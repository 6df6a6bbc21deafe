"""Verify a Switchboard webhook (the Standard Webhooks scheme) with Python's standard library only.

Use verify() in your receiver, or run it as a check:

    python3 verify.py "$WEBHOOK_SECRET" "$webhook_id" "$webhook_timestamp" "$webhook_signature" < body.json

It prints "ok" and exits 0 for a good signature, else prints why and exits 1.
"""
import base64
import hashlib
import hmac
import sys
import time

TOLERANCE_S = 5 * 60  # refuse replays of old deliveries


def verify(secret: str, webhook_id: str, timestamp: str, signature: str, body: bytes) -> None:
    """Raise ValueError unless `signature` is a valid v1 signature of this delivery."""
    if not secret.startswith("whsec_"):
        raise ValueError("the secret must start with whsec_")
    key = base64.b64decode(secret[len("whsec_"):])
    if abs(time.time() - int(timestamp)) > TOLERANCE_S:
        raise ValueError("timestamp too far from now")
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    # The header may carry several signatures (key rotation), separated by spaces.
    for part in signature.split():
        version, _, value = part.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return
    raise ValueError("no matching v1 signature")


if __name__ == "__main__":
    try:
        verify(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.stdin.buffer.read())
    except (ValueError, IndexError) as err:
        print(f"bad: {err}")
        sys.exit(1)
    print("ok")
