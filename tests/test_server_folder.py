"""``searchkit serve FOLDER`` with keys, as an app behind a network sees it: the real server
(uvicorn in a subprocess) over a folder of copies of the tiny index, the admin key from
SEARCHKIT_API_KEY and the search key from --search-key; every key rule, an index added while it
runs, the Prometheus metrics, 503 under a flood, schemathesis with the admin key, and the search
page in a real browser (Playwright driving Debian's chromium)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from searchkit import Manifest
from searchkit.errors import InvalidParameter
from searchkit.ingest.writer import IndexWriter
from searchkit.serve.auth import Keys, check_bind, is_loopback
from tests.conftest import QUERIES, REPO
from tests.test_server import Server, run_schemathesis

pytestmark = pytest.mark.slow

ADMIN = "admin-key-for-the-tests-0123456789"
SEARCH = "search-key-for-the-tests-9876543210"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "tests" / "artifacts"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, built_index: Path) -> Path:
    root = tmp_path_factory.mktemp("serve-folder")
    shutil.copytree(built_index, root / "indexes" / "alpha")
    return root


@pytest.fixture(scope="module")
def server(folder: Path) -> Any:
    """The folder server: small queues and a short deadline, so a flood overflows them."""
    running = Server(
        folder / "indexes", folder / "server.log", "--search-key", SEARCH,
        "--max-queued", "4", "--deadline-seconds", "2",
        env={"SEARCHKIT_API_KEY": ADMIN},
    )  # fmt: skip
    yield running
    running.stop()
    log = (folder / "server.log").read_text()
    assert ADMIN not in log and SEARCH not in log  # keys are never logged


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def call(server: Server, path: str, body: Any = None, key: str | None = ADMIN) -> httpx.Response:
    headers = bearer(key) if key else {}
    if body is None:
        return httpx.get(f"{server.url}{path}", headers=headers, timeout=120)
    return httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=120)


def metrics(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (name, sorted labels) -> value."""
    response = call(server, "/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def total(samples: dict[Any, float], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for (sample, tags), value in samples.items()
        if sample == name and labels.items() <= dict(tags).items()
    )


def test_key_rules(server):
    search = {"query": "what makes sourdough rise", "k": 2, "rerank": False}
    upsert = {"documents": [{"id": "k1", "text": "Keys guard the writes."}]}
    reads = [("/indexes", None), ("/indexes/alpha/info", None), ("/indexes/alpha/search", search),
             ("/indexes/alpha/search/batch", {"queries": ["tides"], "rerank": False})]  # fmt: skip
    writes = [("/indexes/alpha/documents", upsert),
              ("/indexes/alpha/documents/delete", {"ids": ["k1"]}), ("/metrics", None)]  # fmt: skip
    for path, body in reads + writes:
        for key in (None, "wrong-key-of-the-right-length-000", ADMIN[:-1]):
            response = call(server, path, body, key=key)
            assert response.status_code == 401, (path, key, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert "Authorization: Bearer KEY" in response.json()["detail"]
    basic = httpx.get(f"{server.url}/indexes", headers={"authorization": f"Basic {ADMIN}"})
    assert basic.status_code == 401
    for path, body in reads:
        assert call(server, path, body, key=SEARCH).status_code == 200, path
    for path, body in writes:
        response = call(server, path, body, key=SEARCH)
        assert response.status_code == 403, (path, response.text)
        assert "needs the admin key" in response.json()["detail"]
    for path, body in reads + writes:
        assert call(server, path, body, key=ADMIN).status_code == 200, path
    for path in ("/health", "/ready", "/", "/static/app.js", "/static/style.css", "/openapi.json"):
        assert httpx.get(f"{server.url}{path}").status_code == 200, path
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert {"401", "403"} <= set(spec["paths"]["/indexes/{name}/documents"]["post"]["responses"])


def test_key_and_bind_rules_at_start(built_index, tmp_path):
    def serve(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "searchkit", "serve", str(built_index), *args]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=120, cwd=REPO,
            env={**os.environ, **env},
        )  # fmt: skip

    exposed = serve("--host", "0.0.0.0")
    assert exposed.returncode == 1
    assert "refusing to listen on 0.0.0.0 without an API key" in exposed.stderr
    assert "--insecure" in exposed.stderr and "SEARCHKIT_API_KEY" in exposed.stderr
    lone = serve(SEARCHKIT_SEARCH_KEY=SEARCH)
    assert lone.returncode == 1 and "needs an admin key too (--api-key KEY)" in lone.stderr
    short = serve("--api-key", "abc123xyz")
    assert short.returncode == 1 and "at least 16 characters" in short.stderr
    assert short.stderr.rstrip().endswith("(option --api-key)")
    assert SEARCH not in lone.stderr and "abc123xyz" not in short.stderr
    insecure = Server(built_index, tmp_path / "insecure.log", "--host", "0.0.0.0", "--insecure")
    insecure.start(wait_for="/health")  # answers on a non-loopback bind, after a warning
    insecure.stop()
    assert "listening on 0.0.0.0 with no API key (insecure)" in insecure.log.read_text()


def test_keys_in_process():
    keys = Keys(ADMIN, SEARCH)
    assert keys.role(f"Bearer {ADMIN}") == "admin" and keys.role(f"bearer {SEARCH}") == "search"
    assert keys.role(None) is None and keys.role("Bearer ") is None
    assert keys.role(f"Bearer {SEARCH}x") is None and keys.role(ADMIN) is None
    assert Keys(ADMIN).role(f"Bearer {ADMIN}") == "admin" and Keys(ADMIN).role("Bearer ") is None
    assert not Keys().enabled and ADMIN not in repr(keys) and SEARCH not in repr(keys)
    with pytest.raises(InvalidParameter, match="must differ"):
        Keys(ADMIN, ADMIN)
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.9", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.2", "example.com"]))
    check_bind("0.0.0.0", keys)
    check_bind("127.0.0.1", Keys())
    with pytest.raises(InvalidParameter) as err:
        check_bind("::", Keys())
    assert err.value.param == "host"


def test_an_index_added_while_running_shares_the_models(server, folder, built_index, tmp_path):
    listed = call(server, "/indexes", key=SEARCH).json()["indexes"]
    assert [i["name"] for i in listed] == ["alpha"]
    before = metrics(server)
    beta = Path(shutil.copytree(built_index, tmp_path / "beta"))
    with IndexWriter.open(beta) as writer:  # beta lacks one document alpha has
        writer.delete(["sourdough"])
    shutil.move(beta, folder / "indexes" / "beta")  # as a build renames its folder into place
    hits = call(server, "/indexes/beta/search", {"query": "what makes sourdough rise", "k": 12})
    assert hits.status_code == 200, hits.text
    assert "sourdough" not in {h["id"] for h in hits.json()["hits"]}
    alpha = call(server, "/indexes/alpha/search", {"query": "what makes sourdough rise", "k": 1})
    assert alpha.json()["hits"][0]["id"] == "sourdough"
    listed = {i["name"]: i for i in call(server, "/indexes", key=SEARCH).json()["indexes"]}
    assert (listed["alpha"]["documents"], listed["beta"]["documents"]) == (12, 11)
    assert listed["beta"]["ready"] is True
    assert listed["beta"]["version"] == Manifest.read(folder / "indexes" / "beta").version
    after = metrics(server)
    # beta uses the same bi-encoder and reranker: still two models in the process
    assert total(before, "searchkit_models") == total(after, "searchkit_models") == 2
    assert total(after, "searchkit_documents", index="beta") == 11
    load = total(after, "searchkit_model_load_seconds", index="beta")
    assert 0 < load < total(after, "searchkit_model_load_seconds", index="alpha")
    missing = call(server, "/indexes/gamma/search", {"query": "x"})
    assert missing.status_code == 404
    assert "no index 'gamma'" in missing.text and "(there are: alpha, beta)" in missing.text
    assert call(server, "/indexes/..%2Fetc/info").status_code in (404, 422)
    tuned = call(server, "/indexes/alpha/search", {"query": "x", "ef_search": 64})
    assert tuned.status_code == 422 and "ef_search: index 'alpha' does not take it" in tuned.text


def test_metrics_are_present_and_move(server):
    before = metrics(server)
    query = {"query": "hormone that controls blood sugar", "k": 3}
    assert call(server, "/indexes/alpha/search", query).status_code == 200
    plain = [{"query": q, "rerank": False} for q in [*QUERIES, "x"]]
    with ThreadPoolExecutor(4) as pool:  # concurrent retrieval-only queries share micro-batches
        list(pool.map(lambda body: call(server, "/indexes/alpha/search", body), plain))
    after = metrics(server)
    route = {"route": "/indexes/{name}/search", "method": "POST", "status": "200"}
    assert (
        total(after, "searchkit_requests_total", **route)
        - total(before, "searchkit_requests_total", **route)
        == 1 + len(QUERIES) + 1
    )
    for stage in ("embed", "retrieve", "fetch", "rerank"):
        moved = total(after, "searchkit_stage_seconds_count", index="alpha", stage=stage) - total(
            before, "searchkit_stage_seconds_count", index="alpha", stage=stage
        )
        assert moved >= 1, stage
    assert total(after, "searchkit_batch_size_count") > total(before, "searchkit_batch_size_count")
    assert total(after, "searchkit_request_seconds_count", route="/indexes/{name}/search") > 0
    assert ("searchkit_queue_depth", (("kind", "rerank"),)) in after
    assert total(after, "searchkit_queue_depth") == 0  # nothing in flight now
    assert total(after, "searchkit_documents", index="alpha") == 12
    assert total(after, "searchkit_index_version", index="alpha") >= 1
    assert total(after, "searchkit_model_load_seconds", index="alpha") > 0
    unmatched = call(server, "/no/such/route/42")
    assert unmatched.status_code == 404
    assert ("searchkit_requests_total", (("method", "GET"), ("route", "unmatched"),
            ("status", "404"))) in metrics(server)  # fmt: skip


def test_a_flood_gets_503_with_retry_after_or_degrades(server):
    """12 concurrent reranked batches of 48 queries against a queue of 4 and a 2 s deadline:
    some are answered, the rest get 503 with Retry-After at once instead of waiting; asked to
    degrade, 8 at a time all get answers, in retrieval order when the reranker is busy."""
    batch = {"queries": [f"{q} {n}" for n in range(10) for q in QUERIES][:48], "k": 3}
    before = metrics(server)
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: call(server, "/indexes/alpha/search/batch", batch),
                                range(12)))  # fmt: skip
    codes = sorted(r.status_code for r in answers)
    assert set(codes) == {200, 503}, codes
    for refused in (r for r in answers if r.status_code == 503):
        assert int(refused.headers["retry-after"]) >= 1
        assert "the server is busy" in refused.json()["detail"]
    with ThreadPoolExecutor(8) as pool:
        degraded = list(pool.map(lambda _: call(server, "/indexes/alpha/search/batch",
                                                {**batch, "degrade": True}), range(8)))  # fmt: skip
    assert all(r.status_code == 200 for r in degraded), [r.text for r in degraded]
    results = [r.json()["results"][0] for r in degraded]
    assert any(r["degraded"] and not r["reranked"] for r in results)
    assert all(r["reranked"] != r["degraded"] for r in results)
    after = metrics(server)
    refused = sum(code == 503 for code in codes)
    moved = total(after, "searchkit_overloaded_total", kind="rerank", outcome="refused") - total(
        before, "searchkit_overloaded_total", kind="rerank", outcome="refused"
    )
    assert moved == refused
    assert total(after, "searchkit_overloaded_total", outcome="degraded") >= 1


def test_search_page_in_a_browser(server):
    """The page asks for the search key once, lists the indexes, and a query typed into it
    shows the expected hit with the query's words highlighted; a screenshot is kept."""
    if not CHROMIUM.is_file() or not _playwright():
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"CI must run the browser test: install chromium ({CHROMIUM}) and playwright"
            )
        pytest.skip(f"no {CHROMIUM} or playwright here (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(server.url)
        expect(page.locator("#key-form")).to_be_visible()
        page.fill("#key", SEARCH)
        page.click("#key-form button")
        expect(page.locator("#index option[value=alpha]")).to_have_count(1)
        page.select_option("#index", "alpha")
        page.fill("#query", "what causes high and low tide")
        page.click("#search-form button")
        first = page.locator("#results li").first
        expect(first).to_have_attribute("data-id", "tides")
        assert "score" in (first.get_attribute("title") or "")
        marks = {m.lower() for m in first.locator("mark").all_inner_texts()}
        assert "tide" in marks or "tides" in marks, marks
        page.reload()  # the key is asked for once a session
        expect(page.locator("#index option[value=alpha]")).to_have_count(1)
        assert page.locator("#key-form").is_hidden()
        page.fill("#query", "hormone that controls blood sugar")
        page.click("#search-form button")
        expect(page.locator("#results li").first).to_have_attribute("data-id", "insulin")
        # Chinese has no spaces: the page finds its words with Intl.Segmenter to highlight them
        words = page.evaluate("terms('如何重置密码 reset password')")
        assert "".join(w for w in words if not w.isascii()) == "如何重置密码" and len(words) > 3
        assert {"reset", "password"} <= set(words)
        shot = ARTIFACTS / "search-page.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 0


def test_schemathesis_with_the_admin_key(server, tmp_path):
    """The folder's spec (the bearer scheme, 401/403/404 declared) against its answers; the
    ignored_auth check also sends each request without the key and expects 401."""
    spec = f"{server.url}/openapi.json"
    run_schemathesis(spec, tmp_path, "--header", f"Authorization: Bearer {ADMIN}", examples=8)


def _playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True
