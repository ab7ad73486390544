"""Users calling the sandbox's backend while something else happens (a rotation, a restart, a frozen platform): each
calls /api/me with its access token and /api/refresh with its refresh token, on a new connection each time, until
stopped. What a benchmark reports and a test asserts: every answer, or the transport error where none came."""

from __future__ import annotations

import threading
import time


class UserLoad:
    def __init__(self, base: str, tokens: dict[str, str], users: int = 3, pause_s: float = 0.0,
                 linger_s: float = 0.0):
        self.base, self.tokens, self.pause_s, self.linger_s = base, tokens, pause_s, linger_s
        self.answers: list[int | str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._user, daemon=True) for _ in range(users)]

    def _user(self) -> None:
        import httpx

        with httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as http:
            while not self.stop.is_set():
                try:
                    self.answers.append(http.get(f"{self.base}/api/me", headers={
                        "Authorization": f"Bearer {self.tokens['token']}"}).status_code)
                    self.answers.append(http.post(f"{self.base}/api/refresh", json={
                        "refresh_token": self.tokens["refresh_token"]}).status_code)
                except httpx.TransportError as exc:
                    self.answers.append(type(exc).__name__)
                if self.pause_s:
                    time.sleep(self.pause_s)

    def __enter__(self) -> "UserLoad":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(self.linger_s)  # the last moments after the work ended count too
        self.stop.set()
        for t in self.threads:
            t.join()

    @property
    def refused(self) -> list[int | str]:
        """Every answer that was not 200, and every call that got none."""
        return [a for a in self.answers if a != 200]

    def figures(self) -> dict[str, int]:
        a = self.answers
        return {"requests": len(a), "401": sum(x == 401 for x in a),
                "5xx": sum(isinstance(x, int) and x >= 500 for x in a),
                "no answer": sum(isinstance(x, str) for x in a)}
