#!/usr/bin/env python3
"""Writes schemas/corpus/{bad,good}/ (run from anywhere; Python 3 standard library only).

Each bad file holds exactly one event (or one undecodable input) with one defect; the
expected code and message of each are in bad/expected.json, checked by
schemas/tests/corpus.rs (re-bless with PROVENANT_BLESS_CORPUS=1 after a deliberate change,
and review the diff). File names: NNN-short-name.{json,ndjson,bin}; `.batch.json` files are
read as application/cloudevents-batch+json, `.ndjson` as application/x-ndjson, others
without a content type.
"""
import copy
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SHA = "4711a73b71d459a8aebe20e7d71ba22af478ed67"
HEX = "8b8c803b51a1e8b5e0b0d2f6c3a4e5f60718293a4b5c6d7e8f90a1b2c3d4ea9b"
DIGEST = "sha256:" + HEX
SRC = "https://ci.acme.example/shop"


def ce(kind, data, **env):
    e = {"specversion": "1.0", "id": f"{kind}-1", "source": SRC,
         "type": f"io.provenant.{kind}.v1", "time": "2026-11-23T10:00:00Z",
         "datacontenttype": "application/json"}
    e.update(env)
    e["data"] = data
    return e


def good(kind):
    return ce(kind, copy.deepcopy({
        "build": {"commit_sha": SHA, "build_id": "github:acme/shop/1/1",
                  "build_timestamp": "2026-11-23T09:58:00Z"},
        "artifact": {"artifact_digest": DIGEST},
        "deploy": {"deploy_id": "argocd:prod/shop/1", "artifact_digest": DIGEST,
                   "environment": "prod", "service": "shop",
                   "deploy_timestamp": "2026-11-23T10:05:00Z"},
        "runtime": {"instance_id": "pod-1", "service": "shop", "environment": "prod",
                    "deploy_id": "argocd:prod/shop/1"},
        "data": {"job": {"namespace": "etl", "name": "daily"},
                 "run_id": "01973a9c-2f40-7b1e-9c55-3d2e8f6a1b70", "event_type": "COMPLETE",
                 "inputs": [{"namespace": "pg://db", "name": "orders"}]},
        "approval": {"approval_id": "ap-1", "deploy_id": "argocd:prod/shop/1",
                     "environment": "prod", "decision": "approved", "approver": "rm"},
    }[kind]))


def cdevent(kind="service.deployed", content=None, **ctx):
    c = {"specversion": "0.5.0", "id": "cd-1", "source": "/tekton/acme",
         "type": f"dev.cdevents.{kind}.0.3.0", "timestamp": "2026-11-23T10:05:00Z"}
    c.update(ctx)
    if content is None:
        content = {"environment": {"id": "prod"},
                   "artifactId": f"pkg:oci/shop@sha256%3A{HEX}"}
    return {"context": c, "subject": {"id": "shop", "source": "/tekton/acme", "content": content}}


def wrapped(cd):
    return {"specversion": "1.0", "id": cd["context"]["id"], "source": cd["context"]["source"],
            "type": cd["context"]["type"], "datacontenttype": "application/json", "data": cd}


def lineage(**kw):
    e = {"eventTime": "2026-11-23T02:07:41.093Z", "eventType": "COMPLETE",
         "producer": "https://github.com/OpenLineage/OpenLineage/tree/1.54.0/client/python",
         "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
         "run": {"runId": "01973a9c-2f40-7b1e-9c55-3d2e8f6a1b70", "facets": {}},
         "job": {"namespace": "airflow://acme", "name": "shop.daily", "facets": {}},
         "inputs": [{"namespace": "postgres://db:5432", "name": "shop.orders", "facets": {
             "version": {"_producer": "x", "_schemaURL": "y", "datasetVersion": "0/3A7F"}}}],
         "outputs": [{"namespace": "s3://lake", "name": "daily", "facets": {}}]}
    e.update(kw)
    return e


def with_data(kind, **changes):
    e = good(kind)
    for k, v in changes.items():
        if v is DEL:
            del e["data"][k]
        else:
            e["data"][k] = v
    return e


def without(e, key):
    e = copy.deepcopy(e)
    del e[key]
    return e


DEL = object()
j = lambda v: json.dumps(v).encode()  # noqa: E731

bad = {}
build = j(good("build"))
bad["001-not-json.json"] = b"hello, events\n"
bad["002-truncated.json"] = build[: len(build) // 2]
bad["003-trailing-garbage.json"] = build + b" x"
bad["004-invalid-utf8.bin"] = j(with_data("build", branch="main")).replace(b"main", b"ma\xffn")
bad["005-empty-object.json"] = b"{}"
bad["006-number.json"] = b"42"
bad["007-string.json"] = b'"an event"'
bad["008-null.json"] = b"null"
bad["009-missing-specversion.json"] = j(without(good("build"), "specversion"))
bad["010-wrong-specversion.json"] = j(dict(good("build"), specversion="0.3"))
bad["011-specversion-number.json"] = build.replace(b'"specversion": "1.0"', b'"specversion": 1.0')
bad["012-missing-id.json"] = j(without(good("build"), "id"))
bad["013-id-wrong-type.json"] = j(dict(good("build"), id=5))
bad["014-missing-source.json"] = j(without(good("build"), "source"))
bad["015-unknown-type.json"] = j(dict(good("build"), type="io.provenant.release.v1"))
bad["016-missing-type.json"] = j(without(good("build"), "type"))
bad["017-data-not-object.json"] = j(dict(good("build"), data="commit 4711a73"))
bad["018-data-missing.json"] = j(without(good("build"), "data"))
bad["019-data-base64.json"] = j(dict(without(good("build"), "data"), data_base64="e30="))
bad["020-datacontenttype-xml.json"] = j(dict(good("build"), datacontenttype="application/xml"))
bad["021-extension-object.json"] = j(dict(good("build"), traceparent={"v": 1}))
bad["022-build-missing-commit.json"] = j(with_data("build", commit_sha=DEL))
bad["023-build-commit-short.json"] = j(with_data("build", commit_sha="4711a73"))
bad["024-build-commit-uppercase.json"] = j(with_data("build", commit_sha=SHA.upper()))
bad["025-build-bad-timestamp.json"] = j(with_data("build", build_timestamp="23/11/2026 09:58"))
bad["026-build-unknown-field.json"] = j(with_data("build", comit_sha=SHA))
bad["027-build-id-wrong-type.json"] = j(with_data("build", build_id=42))
bad["028-build-pipeline-url-not-http.json"] = j(with_data("build", pipeline_url="ftp://ci/1"))
bad["029-artifact-missing-digest.json"] = j(with_data("artifact", artifact_digest=DEL))
bad["030-artifact-digest-short.json"] = j(with_data("artifact", artifact_digest="sha256:8b8c803b"))
bad["031-artifact-digest-sha1.json"] = j(with_data("artifact", artifact_digest="sha1:" + SHA))
bad["032-deploy-missing-environment.json"] = j(with_data("deploy", environment=DEL))
bad["033-deploy-timestamp-no-zone.json"] = j(with_data("deploy", deploy_timestamp="2026-11-23T10:05:00"))
bad["034-deploy-digest-uppercase.json"] = j(with_data("deploy", artifact_digest="sha256:" + HEX.upper()))
bad["035-runtime-no-deploy-or-digest.json"] = j(with_data("runtime", deploy_id=DEL))
bad["036-runtime-message-bell.json"] = j(with_data("runtime", message="started\u0007"))
bad["037-data-run-id-not-uuid.json"] = j(with_data("data", run_id="run-42"))
bad["038-data-bad-event-type.json"] = j(with_data("data", event_type="DONE"))
bad["039-data-job-wrong-type.json"] = j(with_data("data", job="etl/daily"))
bad["040-data-inputs-not-array.json"] = j(with_data("data", inputs={"namespace": "pg", "name": "o"}))
bad["041-data-dataset-missing-name.json"] = j(with_data("data", outputs=[{"namespace": "s3://lake"}]))
bad["042-approval-bad-decision.json"] = j(with_data("approval", decision="maybe"))
bad["043-approval-missing-approver.json"] = j(with_data("approval", approver=DEL))
bad["044-id-control-char.json"] = j(dict(good("build"), id="build-\u00011"))
bad["045-source-newline.json"] = j(dict(good("build"), source=SRC + "\n"))
bad["046-duplicate-key-top.json"] = build.replace(b'"id": "build-1",', b'"id": "build-1", "id": "build-2",')
bad["047-duplicate-key-nested.json"] = build.replace(b'"build_id": "github:acme/shop/1/1"', b'"build_id": "github:acme/shop/1/1", "build_id": "x"')
deep = good("build")
nest = "leaf"
for _ in range(40):
    nest = [nest]
bad["048-deep-nesting.json"] = j(dict(deep, acmedeep=nest))
bad["049-oversize-event.json"] = j(with_data("build", annotations={"note": "x" * (260 * 1024)}))
bad["050-oversize-string.json"] = j(with_data("runtime", message="y" * (16 * 1024 + 1)))
bad["051-oversize-identifier.json"] = j(with_data("deploy", service="s" * 513))
bad["052-too-many-annotations.json"] = j(with_data("build", annotations={f"k{i}": "v" for i in range(65)}))
bad["053-annotation-value-number.json"] = j(with_data("build", annotations={"runner": 4}))
bad["054-time-not-rfc3339.json"] = j(dict(good("build"), time="yesterday"))
bad["055-id-leading-space.json"] = j(dict(good("build"), id=" build-1"))
bad["056-id-empty.json"] = j(dict(good("build"), id=""))
bad["057-nul-in-id.json"] = j(dict(good("build"), id="build\u00001"))
bad["058-utf8-bom.json"] = b"\xef\xbb\xbf" + build
bad["059-array-as-structured.json"] = b"[[1]]"
# CDEvents
bad["060-cdevents-context-not-object.json"] = j({"context": "x", "subject": {"id": "s"}})
bad["061-cdevents-bad-specversion.json"] = j(cdevent(specversion="1.0"))
bad["062-cdevents-unmapped-type.json"] = j(cdevent("testcaserun.finished", {}))
bad["063-cdevents-malformed-type.json"] = j(cdevent(type="dev.cdevents.service"))
bad["064-cdevents-environment-missing.json"] = j(cdevent(content={"artifactId": f"pkg:oci/shop@sha256%3A{HEX}"}))
bad["065-cdevents-purl-no-digest.json"] = j(cdevent(content={"environment": {"id": "prod"}, "artifactId": "pkg:oci/shop@v1.2.3"}))
cd = cdevent()
del cd["context"]["timestamp"]
bad["066-cdevents-missing-timestamp.json"] = j(cd)
w = wrapped(cdevent())
w["id"] = "other"
bad["067-cdevents-in-cloudevent-id-mismatch.json"] = j(w)
w = wrapped(cdevent())
w["data"] = "context=..."
bad["068-cdevents-in-cloudevent-data-string.json"] = j(w)
cd = cdevent("build.finished", {"artifactId": f"pkg:oci/shop@sha256%3A{HEX}"})
cd["customData"] = {"commit_sha": "4711a73"}
bad["069-cdevents-customdata-commit-short.json"] = j(cd)
cd = cdevent("build.finished", {})
cd["customData"] = {"commit_sha": 4711}
bad["070-cdevents-customdata-wrong-type.json"] = j(cd)
cd = cdevent()
del cd["subject"]["id"]
bad["071-cdevents-subject-id-missing.json"] = j(cd)
bad["072-cdevents-build-finished-nothing.json"] = j(cdevent("build.finished", {}))
bad["073-cdevents-environment-id-control.json"] = j(cdevent(content={"environment": {"id": "prod\u001b[0m"}, "artifactId": f"pkg:oci/shop@sha256%3A{HEX}"}))
bad["074-cdevents-bad-timestamp.json"] = j(cdevent(timestamp="2026-11-23 10:05"))
bad["075-cdevents-duplicate-key-in-context.json"] = j(cdevent()).replace(b'"id": "cd-1"', b'"id": "cd-1", "id": "cd-2"')
# OpenLineage
ol = lineage()
del ol["run"]["runId"]
bad["080-openlineage-missing-run-id.json"] = j(ol)
bad["081-openlineage-run-id-not-uuid.json"] = j(lineage(run={"runId": "scheduled__2026-11-23"}))
bad["082-openlineage-bad-event-type.json"] = j(lineage(eventType="SUCCESS"))
bad["083-openlineage-bad-event-time.json"] = j(lineage(eventTime="1732327661"))
bad["084-openlineage-missing-producer.json"] = j(without(lineage(), "producer"))
bad["085-openlineage-job-missing-name.json"] = j(lineage(job={"namespace": "airflow://acme"}))
bad["086-openlineage-inputs-not-array.json"] = j(lineage(inputs={"namespace": "pg", "name": "o"}))
bad["087-openlineage-dataset-missing-namespace.json"] = j(lineage(outputs=[{"name": "daily"}]))
bad["088-openlineage-dataset-event.json"] = j({"eventTime": "2026-11-23T02:07:41Z", "producer": "p", "schemaURL": "s", "dataset": {"namespace": "s3://lake", "name": "daily"}})
bad["089-openlineage-job-name-control.json"] = j(lineage(job={"namespace": "airflow://acme", "name": "daily\u0000"}))
ol = lineage()
ol["inputs"][0]["facets"]["version"]["datasetVersion"] = 42
bad["090-openlineage-version-facet-wrong-type.json"] = j(ol)
ol = lineage()
ol["run"]["facets"]["acme_custom"] = nest
bad["091-openlineage-deep-unknown-facet.json"] = j(ol)
bad["092-openlineage-duplicate-key-in-facet.json"] = j(lineage()).replace(b'"datasetVersion": "0/3A7F"', b'"datasetVersion": "0/3A7F", "datasetVersion": "0/3A80"')
bad["093-openlineage-too-many-datasets.json"] = j(lineage(inputs=[{"namespace": "pg", "name": f"t{i}"} for i in range(257)]))
bad["094-openlineage-job-event.json"] = j({"eventTime": "2026-11-23T02:07:41Z", "producer": "p", "schemaURL": "s", "job": {"namespace": "airflow://acme", "name": "shop.daily"}})
# Framing
bad["095-ndjson-one-bad-line.ndjson"] = b"\n\n" + j(with_data("artifact", artifact_digest="sha256:nothex")) + b"\n\n"
bad["096-batch-one-bad-event.batch.json"] = b"[" + j(with_data("deploy", deploy_timestamp="soon")) + b"]"
bad["097-batch-truncated.batch.json"] = b"[" + build + b","
bad["098-batch-not-array.batch.json"] = build
bad["099-ndjson-invalid-utf8-line.ndjson"] = b"{\"specversion\": \"1.0\", \"id\": \"\xc3\x28\"}\n"

good_files = {}
good_files["build-required-fields-only.json"] = j(good("build"))
good_files["all-kinds-minimal.ndjson"] = b"".join(j(good(k)) + b"\n" for k in ["build", "artifact", "deploy", "runtime", "data", "approval"])
good_files["cdevents-service-deployed.json"] = json.dumps(cdevent(), indent=2).encode()
good_files["cdevents-service-deployed-in-cloudevent.json"] = j(wrapped(cdevent("service.upgraded")))
cd = cdevent("build.finished", {"artifactId": f"pkg:oci/shop@sha256%3A{HEX}?repository_url=ghcr.io/acme"})
cd["customData"] = {"commit_sha": SHA, "build_id": "tekton:acme/shop-build-7", "branch": "main"}
good_files["cdevents-build-finished-with-commit.json"] = j(cd)
good_files["cdevents-artifact-published-checksum.json"] = j({"context": cdevent()["context"] | {"type": "dev.cdevents.artifact.published.0.2.0", "specversion": "0.4.1"}, "subject": {"id": f"pkg:maven/org.acme/shop@1.2.3?checksum=sha1:{SHA},sha256:{HEX}", "content": {}}})
good_files["cdevents-service-published-customdata.json"] = j(dict(cdevent("service.published", {"environment": {"id": "prod"}}), customData={"artifact_digest": DIGEST}))
good_files["openlineage-no-event-type-custom-facet.json"] = j(without(lineage(outputs=[{"namespace": "s3://lake", "name": "daily", "facets": {"provenant": {"_producer": "p", "_schemaURL": "s", "schema_version": "7"}, "acme": {"x": [1, {"y": None}]}}}]), "eventType"))
pk = wrapped(cdevent("artifact.packaged", {"change": {"id": "PR-12", "source": "github.com/acme/shop"}}))
pk["data"]["subject"]["id"] = f"pkg:oci/shop@sha256%3A{HEX}"
good_files["mixed-formats.ndjson"] = j(good("deploy")) + b"\n" + j(cdevent("service.rolledback")) + b"\r\n\n" + j(lineage()) + b"\n" + j(pk) + b"\n"
good_files["batch-mixed.batch.json"] = b"[" + b", ".join([j(good("approval")), j(lineage(eventType="START")), j(wrapped(cdevent()))]) + b"]"

for name, files in [("bad", bad), ("good", good_files)]:
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    for f, data in files.items():
        with open(os.path.join(d, f), "wb") as fh:
            fh.write(data)
print(len(bad), "bad,", len(good_files), "good")
