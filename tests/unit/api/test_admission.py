"""AdmissionReview v1 requests: where each kind keeps its containers."""

from __future__ import annotations

import copy

import pytest

from imageprov.api.admission import InvalidReview, parse_review, review_response

POD_SPEC = {
    "initContainers": [{"name": "migrate", "image": "registry.local/app/migrate:1"}],
    "containers": [{"name": "app", "image": "registry.local/app/web:2"},
                   {"name": "proxy", "image": "registry.local/app/proxy:3"}],
    "ephemeralContainers": [{"name": "debug", "image": "registry.local/tools/debug:4"}],
}


def _review(kind: str, group: str, obj: dict | None, version: str = "v1",
            operation: str = "CREATE"):
    return {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
            "namespace": "payments", "name": "web", "operation": operation,
            "userInfo": {"username": "admin"}, "object": obj, "oldObject": None,
            "dryRun": False,
        },
    }


def _template(spec: dict) -> dict:
    return {"metadata": {"labels": {"app": "web"}}, "spec": copy.deepcopy(spec)}


@pytest.mark.parametrize(("kind", "group", "obj"), [
    ("Pod", "", {"metadata": {"name": "web"}, "spec": POD_SPEC}),
    ("Deployment", "apps", {"spec": {"replicas": 2, "template": _template(POD_SPEC)}}),
    ("StatefulSet", "apps", {"spec": {"template": _template(POD_SPEC)}}),
    ("DaemonSet", "apps", {"spec": {"template": _template(POD_SPEC)}}),
    ("ReplicaSet", "apps", {"spec": {"template": _template(POD_SPEC)}}),
    ("Job", "batch", {"spec": {"template": _template(POD_SPEC)}}),
    ("CronJob", "batch", {"spec": {"schedule": "0 * * * *", "jobTemplate": {
        "spec": {"template": _template(POD_SPEC)}}}}),
])
def test_every_container_field_read(kind, group, obj):
    request = parse_review(_review(kind, group, obj))
    labels = [(item.label, item.image) for item in request.images]
    assert labels == [
        ("initContainers[migrate]", "registry.local/app/migrate:1"),
        ("containers[app]", "registry.local/app/web:2"),
        ("containers[proxy]", "registry.local/app/proxy:3"),
        ("ephemeralContainers[debug]", "registry.local/tools/debug:4"),
    ]
    assert request.uid == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert request.namespace == "payments"


def test_delete_judges_no_image():
    review = _review("Pod", "", None, operation="DELETE")
    assert parse_review(review).images == ()


def test_other_kinds_judge_no_image():
    review = _review("ConfigMap", "", {"data": {"image": "evil"}})
    assert parse_review(review).images == ()


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda r: r.update(apiVersion="admission.k8s.io/v1beta1"), "expected apiVersion"),
    (lambda r: r["request"].pop("uid"), "request.uid must be a non-empty string"),
    (lambda r: r["request"].update(object=[]), "request.object must be an object"),
    (lambda r: r["request"]["object"]["spec"].update(containers={}),
     "request.object.spec.containers must be a list"),
    (lambda r: r["request"]["object"]["spec"]["containers"][0].pop("image"),
     r"request.object.spec.containers\[app\] has no image"),
])
def test_malformed_reviews_rejected(mutate, message):
    review = _review("Pod", "", {"spec": copy.deepcopy(POD_SPEC)})
    mutate(review)
    with pytest.raises(InvalidReview, match=message):
        parse_review(review)


def test_response_carries_uid_and_status():
    response = review_response("uid-1", False, "imageprov denied 1 image(s): x")
    assert response["apiVersion"] == "admission.k8s.io/v1"
    assert response["kind"] == "AdmissionReview"
    assert response["response"]["uid"] == "uid-1"
    assert response["response"]["allowed"] is False
    assert response["response"]["status"] == {"code": 403,
                                              "message": "imageprov denied 1 image(s): x"}


def test_long_warnings_shortened():
    response = review_response("uid-1", True, warnings=["w" * 400])
    assert len(response["response"]["warnings"][0]) == 256
