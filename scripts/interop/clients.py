"""Send events to Provenant with clients from other ecosystems (used by cli/tests/python_clients.rs).

    clients.py cloudevents-http URL N        # Python cloudevents SDK, structured mode, POST /v1/events
    clients.py cloudevents-kafka BOOTSTRAP N # cloudevents Kafka binary mode, produced by confluent-kafka
    clients.py openlineage-http URL          # openlineage-python's own HttpTransport (POST /api/v1/lineage)
    clients.py raw-corpus BOOTSTRAP DIR N    # every malformed corpus file straight to prov.raw
                                             # (structured mode), N good binary-mode events between

Each mode prints one JSON line: {"sent": [event ids...]} (for Kafka also the partitions), and
exits non-zero if the destination refused anything.
"""
from __future__ import annotations

import json
import sys
import urllib.request
import uuid
from datetime import datetime, timezone

DIGEST = "sha256:" + "9b2f4c1d8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c"


def ce_event(i: int):
    from cloudevents.core.v1.event import CloudEvent

    return CloudEvent(
        attributes={
            "specversion": "1.0",
            "id": f"py-{i:05}",
            "source": "https://k8s.acme.example/clusters/prod",
            "type": "io.provenant.runtime.v1",
            "time": datetime(2026, 11, 23, 10, 0, i % 60, tzinfo=timezone.utc),
            "datacontenttype": "application/json",
        },
        data={
            "instance_id": f"shop-pod-{i % 5}",
            "service": "shop",
            "environment": "production",
            "deploy_id": "deploy-42",
            "artifact_digest": DIGEST,
            "message": "started",
        },
    )


def cloudevents_http(url: str, n: int) -> None:
    from cloudevents.core.bindings import http as ce_http

    sent = []
    for i in range(n):
        msg = ce_http.to_structured_event(ce_event(i))
        req = urllib.request.Request(f"{url}/v1/events", data=msg.body, headers=dict(msg.headers), method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            if resp.status != 202:
                raise SystemExit(f"status {resp.status}")
        sent.append(f"py-{i:05}")
    print(json.dumps({"sent": sent}))


def cloudevents_kafka(bootstrap: str, n: int) -> None:
    from cloudevents.core.bindings import kafka as ce_kafka
    from confluent_kafka import Producer

    # murmur2_random is Kafka's Java partitioner, the one Provenant uses for every key.
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random",
                         "enable.idempotence": True, "acks": "all"})
    delivered, errors = [], []

    def report(event_id, err, msg):
        # Delivery reports carry no headers: the event id is bound to each callback.
        if err is not None:
            errors.append(str(err))
        else:
            delivered.append({"id": event_id, "partition": msg.partition(), "key": msg.key().decode()})

    for i in range(n):
        ev = ce_event(i)
        msg = ce_kafka.to_binary_event(ev)
        key = f"instance:shop-pod-{i % 5}".encode()
        producer.produce("prov.raw", value=msg.value, key=key,
                         headers=[(k, v) for k, v in msg.headers.items()],
                         on_delivery=lambda err, m, event_id=ev.get_id(): report(event_id, err, m))
    producer.flush(30)
    if errors or len(delivered) != n:
        raise SystemExit(f"delivery failed: {errors[:3]} ({len(delivered)}/{n} delivered)")
    print(json.dumps({"sent": [d["id"] for d in delivered], "delivered": delivered}))


def openlineage_http(url: str) -> None:
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.transport.http import HttpConfig, HttpTransport

    transport = HttpTransport(HttpConfig(url=url))
    run_id = str(uuid.UUID("01973a9c-2f40-7b1e-9c55-3d2e8f6a1b70"))
    job = Job(namespace="airflow://acme-prod", name="shop_orders.daily_revenue")
    inputs = [InputDataset(namespace="postgres://orders-db:5432", name="shop.orders")]
    outputs = [OutputDataset(namespace="s3://acme-analytics", name="revenue/daily")]
    sent = []
    for state, t in [(RunState.START, "2026-11-23T02:00:04.512Z"), (RunState.COMPLETE, "2026-11-23T02:07:41.093Z")]:
        transport.emit(RunEvent(eventType=state, eventTime=t, run=Run(runId=run_id), job=job,
                                inputs=inputs, outputs=outputs))
        sent.append(state.value)
    transport.close()
    print(json.dumps({"sent": sent}))


def raw_corpus(bootstrap: str, corpus: str, n_good: int) -> None:
    import os

    from cloudevents.core.bindings import kafka as ce_kafka
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random",
                         "enable.idempotence": True, "acks": "all"})
    errors = []

    def report(err, _msg):
        if err is not None:
            errors.append(str(err))

    # One Kafka record holds one event: the batch and NDJSON framings of the corpus are HTTP's.
    names = sorted(f for f in os.listdir(corpus)
                   if f != "expected.json" and not f.endswith((".batch.json", ".ndjson")))
    good = []
    for i, name in enumerate(names):
        with open(os.path.join(corpus, name), "rb") as f:
            body = f.read()
        producer.produce("prov.raw", value=body, key=f"corpus:{name}".encode(),
                         headers=[("content-type", b"application/cloudevents+json")],
                         on_delivery=report)
        for j in range(n_good // max(len(names), 1) + (1 if i < n_good % max(len(names), 1) else 0)):
            ev = ce_event(len(good))
            msg = ce_kafka.to_binary_event(ev)
            producer.produce("prov.raw", value=msg.value, key=f"instance:shop-pod-{len(good) % 5}".encode(),
                             headers=[(k, v) for k, v in msg.headers.items()], on_delivery=report)
            good.append(ev.get_id())
    producer.flush(30)
    if errors:
        raise SystemExit(f"delivery failed: {errors[:3]}")
    print(json.dumps({"bad": names, "good": good}))


def main() -> None:
    mode = sys.argv[1]
    if mode == "cloudevents-http":
        cloudevents_http(sys.argv[2], int(sys.argv[3]))
    elif mode == "cloudevents-kafka":
        cloudevents_kafka(sys.argv[2], int(sys.argv[3]))
    elif mode == "raw-corpus":
        raw_corpus(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif mode == "openlineage-http":
        openlineage_http(sys.argv[2])
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
