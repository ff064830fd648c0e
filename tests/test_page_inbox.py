"""The page inbox's store: readers never see half a line, writers never interleave."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from stack.page_inbox import CHAT_PATH, make_handler, read_pages

pytestmark = pytest.mark.unit


def test_a_line_still_being_written_is_not_read(tmp_path: Path) -> None:
    store = tmp_path / "pages.jsonl"
    whole = json.dumps({"received_at": 1.0, "kind": "chat", "event": {"n": 1}})
    store.write_text(whole + "\n" + whole[:40])
    assert [e["event"] for e in read_pages(store)] == [{"n": 1}]


def test_concurrent_posts_store_whole_lines(tmp_path: Path) -> None:
    store = tmp_path / "pages.jsonl"
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(store))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}{CHAT_PATH}"
    big = "x" * 20_000  # beyond one write buffer

    def post(n: int) -> None:
        body = json.dumps({"n": n, "pad": big}).encode()
        urllib.request.urlopen(urllib.request.Request(url, body, method="POST"), timeout=10)

    try:
        threads = [threading.Thread(target=post, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        server.shutdown()
    assert sorted(e["event"]["n"] for e in read_pages(store)) == list(range(16))
