"""Re-upload clusters past 10,000 hashed videos, on the real Elasticsearch: a re-upload of a video older than
10,000 others still joins its cluster (the candidates are paged through the whole index)."""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from elasticsearch import helpers

from pipeline import make_es_client
from pipeline.spread import Member, cluster_id_of, cluster_stats, update_clusters
from pipeline.spread._index import PAGE_SIZE

pytestmark = [pytest.mark.elasticsearch, pytest.mark.slow]

OTHERS = 10_050


def _doc(uid: str, hashes: list[str], first_seen: datetime, **extra: Any) -> dict[str, Any]:
    doc = {"video_uid": uid, "platform": uid.split(":")[0], "status": "queued", "phash": hashes,
           "first_seen": first_seen.isoformat(), "published": first_seen.isoformat(),
           "channel": {"id": uid, "name": uid}, "spread": {"views": 10}, "url": {"full": f"https://x.example/{uid}"}}
    member = Member(uid=uid, hashes=hashes, first_seen=doc["first_seen"], published=doc["published"], uploader=uid,
                    views=10, score=extra.get("fused", {}).get("score"))
    doc["cluster"] = cluster_stats(cluster_id_of(uid), [member])[uid]  # already clustered: alone
    return {**doc, **extra}


def test_reupload_of_a_video_older_than_ten_thousand_others_joins_its_cluster(make_crawl_settings: Any) -> None:
    settings = make_crawl_settings()
    rng = random.Random(7)
    now = datetime.now(UTC).replace(microsecond=0)
    original_hashes = [f"{rng.getrandbits(64):016x}" for _ in range(8)]
    original = _doc("youtube:original", original_hashes, now - timedelta(days=20),
                    fused={"score": 0.93, "verdict": "likely_manipulated"})
    others = [_doc(f"tiktok:{i}", [f"{rng.getrandbits(64):016x}" for _ in range(8)],
                   now - timedelta(days=10) + timedelta(seconds=i)) for i in range(OTHERS)]
    copy_hashes = [f"{int(h, 16) ^ (1 << rng.randrange(64)) ^ (1 << rng.randrange(64)):016x}"
                   for h in original_hashes]  # a re-encode: two bits a frame
    copy = {"video_uid": "x:copy", "platform": "x", "status": "queued", "phash": copy_hashes,
            "first_seen": now.isoformat(), "published": now.isoformat(), "channel": {"id": "bot", "name": "Bot"},
            "url": {"full": "https://x.example/copy"}}
    es = make_es_client(settings)
    index = settings.index("videos")
    try:
        helpers.bulk(es, ({"_index": index, "_id": d["video_uid"], "_source": d}
                          for d in [original, *others, copy]), chunk_size=2000, refresh=True)
        assert es.count(index=index)["count"] == OTHERS + 2 > 2 * PAGE_SIZE  # more than two pages, past 10,000
        result = update_clusters(["x:copy"], settings, now=now)
        es.indices.refresh(index=index)
        got = {d["_id"]: d["_source"] for d in es.mget(index=index, ids=["x:copy", "youtube:original"])["docs"]}
    finally:
        es.close()
    founder = cluster_id_of("youtube:original")
    assert result["reuploads"] == {founder: ["youtube:original", "x:copy"]}
    assert result["clusters"] == OTHERS + 1
    assert result["updated"] == 2  # only the two members changed; the 10,050 others were already right
    assert got["x:copy"]["cluster"]["id"] == founder and got["x:copy"]["cluster"]["original"] is False
    assert got["youtube:original"]["cluster"] == {**got["x:copy"]["cluster"], "original": True}
    assert got["x:copy"]["cluster"]["size"] == 2 and got["x:copy"]["cluster"]["max_score"] == 0.93
