"""``python -m backend``: the API on HOST:PORT (uvicorn). Refuses to listen beyond loopback
without API_TOKEN unless ALLOW_INSECURE=1."""
from __future__ import annotations

import ipaddress
import sys

from backend.settings import get_settings


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname may resolve anywhere: treat as exposed


def main() -> int:
    try:
        settings = get_settings()
    except Exception as exc:  # noqa: BLE001 - bad env values: one line, not a traceback
        print(f"backend: invalid settings: {str(exc).splitlines()[0]} ({exc})", file=sys.stderr)
        return 2
    if not is_loopback(settings.host) and not settings.api_token and not settings.allow_insecure:
        print(f"backend: refusing to listen on {settings.host} without API_TOKEN "
              "(set API_TOKEN, or ALLOW_INSECURE=1 if this is on purpose)", file=sys.stderr)
        return 2
    import uvicorn

    uvicorn.run("backend.app:create_app", factory=True, host=settings.host, port=settings.port,
                workers=settings.resolved_web_concurrency, proxy_headers=False, log_level="info",
                timeout_graceful_shutdown=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
