"""The HTTP service: every endpoint, bad input of every kind, the token, media range requests."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

import mcsan
from mcsan.data.layouts import read_dataset
from mcsan.index import IndexWriter, build_index, open_index
from mcsan.serve import MAX_BODY_BYTES, ServiceSettings, create_app, read_token
from mcsan.sources import open_source

TOKEN = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def media_index(tiny_checkpoint, tiny_prepared, tmp_path_factory):
    """An index of the tiny test videos as `mcsan extract` would have written them: each with
    its source file and frame timestamps; the first video's file has known bytes."""
    root, _ = tiny_prepared
    split = read_dataset(root, progress=False)["test"]
    base = tmp_path_factory.mktemp("served")
    features = base / "features.hdf5"
    with h5py.File(features, "w") as file:
        for position, video_id in enumerate(split.video_ids):
            frames = split.video_features(video_id)
            dataset = file.create_dataset(video_id, data=frames)
            dataset.attrs["timestamps"] = np.arange(len(frames), dtype=np.float64) * 0.5
            if position < 2:
                source = base / f"{video_id}.mp4"
                source.write_bytes(bytes(range(256)) * 4)
                dataset.attrs["source"] = str(source)
    torch.set_num_threads(1)
    retriever = mcsan.load(tiny_checkpoint.best_dir, device="cpu")
    out = build_index(retriever, open_source(features, progress=False), base / "index",
                      progress=False)
    return open_index(out, retriever=retriever), sorted(split.video_ids)


@pytest.fixture(scope="module")
def client(media_index):
    index, _ = media_index
    return TestClient(create_app(index))


@pytest.fixture(scope="module")
def guarded(media_index):
    index, _ = media_index
    return TestClient(create_app(index, ServiceSettings(token=TOKEN)))


def test_search_answers_what_the_index_answers(client, media_index, one_thread):
    index, _ = media_index
    response = client.post("/search", json={"query": "a dog chases a cat", "k": 4,
                                            "weights": {"entity": 2}})
    assert response.status_code == 200
    body = response.json()
    assert body["schema"] == "mcsan.search/1" and body["videos"] == index.count
    [result] = body["results"]
    expected = index.search(["a dog chases a cat"], k=4, weights={"entity": 2})[0]
    assert [h["video_id"] for h in result["hits"]] == [h.video_id for h in expected.hits]
    assert result["query"]["relationships"] == ["dog|chase|cat"]
    assert result["weights"]["entity"] == 2.0
    assert result["hits"][0]["timestamps"][:2] == [0.0, 0.5]
    assert client.post("/search", json={"query": "a man runs", "k": 100}).json()[
        "results"][0]["hits"][-1]["rank"] == index.count  # k above the count: every video


def test_info_health_video_and_page(client, media_index):
    index, ids = media_index
    assert client.get("/health").json()["videos"] == index.count
    info = client.get("/info").json()
    assert info["levels"] == ["global", "entity", "action", "relationship"]
    assert set(info["weights"]) == set(info["levels"])
    record = client.get(f"/videos/{ids[0]}").json()
    assert record["id"] == ids[0] and record["media"] is True and "source" not in record
    assert set(record["attributes"]) == {"entity", "action", "relationship"}
    assert client.get(f"/videos/{ids[5]}").json()["media"] is False
    page = client.get("/")
    assert page.status_code == 200 and "<title>MCSAN video search</title>" in page.text
    assert client.get("/docs").status_code == 200
    assert "/search" in client.get("/openapi.json").json()["paths"]


def test_media_is_streamed_with_range_requests(client, media_index):
    _, ids = media_index
    whole = client.get(f"/videos/{ids[0]}/media")
    assert whole.status_code == 200 and whole.content == bytes(range(256)) * 4
    assert whole.headers["content-type"] == "video/mp4"
    part = client.get(f"/videos/{ids[0]}/media", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == bytes(range(10, 20))
    assert part.headers["content-range"] == "bytes 10-19/1024"
    assert client.get(f"/videos/{ids[5]}/media").status_code == 404  # no file registered


@pytest.mark.parametrize("path", [
    "/videos/..%2F..%2F..%2Fetc%2Fpasswd/media",
    "/videos/%2Fetc%2Fpasswd/media",
    "/videos/../../etc/passwd/media",
    "/videos/video0.mp4%00/media",
])
def test_no_path_from_the_request_reaches_the_file_system(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert "root:" not in response.text


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"query": ""}, 422, "the query is empty"),
    ({"query": "   "}, 422, "the query is empty"),
    ({"query": "a dog " * 100}, 422, "at most 500 characters"),
    ({"query": "a dog\x00 runs"}, 422, "control characters (U+0000)"),
    ({"query": "a dog\x1b[31m"}, 422, "control characters (U+001B)"),
    ({"query": "a dog", "k": 0}, 422, "k: Input should be greater than or equal to 1"),
    ({"query": "a dog", "k": 101}, 422, "k: Input should be less than or equal to 100"),
    ({"query": "a dog", "k": "ten"}, 422, "k: Input should be a valid integer"),
    ({"query": "a dog", "weights": {"colour": 1}}, 400, "unknown level 'colour'"),
    ({"query": "a dog", "weights": {"entity": -1}}, 400, "use a number >= 0"),
    ({"query": "a dog", "weights": {"entity": 0, "global": 0, "action": 0,
                                    "relationship": 0}}, 400, "every level's weight is zero"),
    ({"query": "qwertyuiop zxcvbnm"}, 400, "no word this model knows"),
    ({"query": "a dog", "top": 3}, 422, "top: Extra inputs are not permitted"),
    ({}, 422, "query: Field required"),
])
def test_bad_searches_are_4xx_json_that_say_what_to_fix(client, body, status, message):
    response = client.post("/search", json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_malformed_oversized_and_unknown_requests(client):
    response = client.post("/search", content=b'{"query": "a dog"',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and "not valid JSON" in response.json()["error"]
    huge = b'{"query": "' + b"a" * MAX_BODY_BYTES + b'"}'
    response = client.post("/search", content=huge, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "over 16384 bytes" in response.json()["error"]
    response = client.get("/videos/no-such-video")
    assert response.status_code == 404 and "no video 'no-such-video'" in response.json()["error"]
    assert client.get("/no/such/endpoint").status_code == 404
    assert client.get("/search").status_code == 405


def test_the_token_guards_every_endpoint_but_health_and_the_page(guarded, media_index):
    _, ids = media_index
    protected = [("post", "/search"), ("get", "/info"), ("get", f"/videos/{ids[0]}"),
                 ("get", f"/videos/{ids[0]}/media"), ("get", "/metrics"), ("get", "/docs")]
    for method, path in protected:
        kwargs = {"json": {"query": "a dog runs"}} if method == "post" else {}
        response = getattr(guarded, method)(path, **kwargs)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in response.json()["error"]
        wrong = getattr(guarded, method)(path, headers={"Authorization": "Bearer nope"}, **kwargs)
        assert wrong.status_code == 401
        right = getattr(guarded, method)(path, headers={"Authorization": f"Bearer {TOKEN}"},
                                         **kwargs)
        assert right.status_code == 200, path
    assert guarded.get("/health").status_code == 200
    assert guarded.get("/").status_code == 200


def test_tokens_come_from_a_file_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("MCSAN_TOKEN", raising=False)
    assert read_token(None) is None
    monkeypatch.setenv("MCSAN_TOKEN", TOKEN)
    assert read_token(None) == TOKEN
    path = tmp_path / "token"
    path.write_text("from-the-file-123\n")
    assert read_token(path) == "from-the-file-123"
    path.write_text("short\n")
    with pytest.raises(ValueError, match="shorter than 8 characters"):
        read_token(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_token(tmp_path / "missing")


def test_metrics_count_requests_and_their_latency(media_index):
    index, _ = media_index
    client = TestClient(create_app(index))
    client.post("/search", json={"query": "a dog runs", "k": 2})
    client.post("/search", json={"query": ""})
    client.get("/health")
    text = client.get("/metrics").text
    assert 'mcsan_requests_total{method="POST",path="/search",status="200"} 1.0' in text
    assert 'mcsan_requests_total{method="POST",path="/search",status="422"} 1.0' in text
    assert 'mcsan_request_seconds_bucket{le="0.1",path="/search"}' in text


def test_cross_origin_requests_only_from_named_origins(media_index):
    index, _ = media_index
    origin = {"Origin": "https://videos.example.org"}
    closed = TestClient(create_app(index)).get("/health", headers=origin)
    assert "access-control-allow-origin" not in closed.headers
    opened = TestClient(create_app(index, ServiceSettings(
        cors_origins=["https://videos.example.org"]))).get("/health", headers=origin)
    assert opened.headers["access-control-allow-origin"] == "https://videos.example.org"


def test_a_service_started_during_an_add_serves_only_committed_videos(media_index, tmp_path,
                                                                      tiny_prepared):
    import shutil

    index, _ = media_index
    copy = tmp_path / "index"
    shutil.copytree(index.directory, copy)
    root, _ = tiny_prepared
    val = read_dataset(root, progress=False)["val"]
    writer = IndexWriter(copy, index.manifest)  # another process, half way through an add
    embeddings = index.retriever.encode_videos([val.video_features(v) for v in val.video_ids])
    rows = len(val.video_ids)
    writer.append(val.video_ids, {lv: e.numpy() for lv, e in embeddings.items()},
                  {lv: np.zeros((rows, 10), np.int32) for lv in index.attribute_levels},
                  {lv: np.zeros((rows, 10), np.float32) for lv in index.attribute_levels})
    served = TestClient(create_app(open_index(copy, retriever=index.retriever)))
    assert served.get("/health").json()["videos"] == index.count
    hits = served.post("/search", json={"query": "a dog runs", "k": 100}).json()
    assert {h["video_id"] for h in hits["results"][0]["hits"]}.isdisjoint(val.video_ids)
    assert served.get(f"/videos/{val.video_ids[0]}").status_code == 404


# ----- the service against its own OpenAPI description --------------------------------------
def test_no_generated_request_gets_a_server_error(media_index, one_thread):
    """Schemathesis generates requests from the service's own OpenAPI description (valid and
    invalid bodies, ids, paths); none may get a 5xx, and every 4xx is a JSON error."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    index, _ = media_index
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(index))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "POST /search", "GET /videos/{video_id}", "GET /videos/{video_id}/media", "GET /health"}
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call()
            assert response.status_code < 500, (case.method, case.path, case.body,
                                                 response.text)
            if response.status_code >= 400:
                assert "error" in response.json()

        check()


def test_concurrent_queries_are_answered_together_and_fail_alone(media_index, one_thread):
    from concurrent.futures import Future, ThreadPoolExecutor

    from mcsan.serve import SearchBatcher

    index, _ = media_index
    batcher = SearchBatcher(index)
    weights = index.retriever.level_weights
    group = [(query, k, weights, Future()) for query, k in
             (("a dog chases a cat", 3), ("qwertyuiop zxcvbnm", 5), ("a man runs", 2))]
    batcher._answer(group)  # one search for the three; the bad one fails alone
    for (query, k, _, answer) in (group[0], group[2]):
        expected = index.search([query], k=k)[0]
        assert [(h.video_id, h.score) for h in answer.result().hits] == [
            (h.video_id, h.score) for h in expected.hits]
    with pytest.raises(ValueError, match="no word this model knows"):
        group[1][3].result()

    queries = ["a dog chases a cat", "a man runs", "the cat jumps", "a girl pushes a boy"] * 4
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda q: batcher.search(q, 4, weights), queries))
    for query, answer in zip(queries, answers, strict=True):
        assert [h.video_id for h in answer.hits] == [
            h.video_id for h in index.search([query], k=4)[0].hits]
