"""Judging images: builders, flags, exceptions, pending and unattributed images."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import yaml

from imageprov.model import Flag, Image, ImageKind, Platform, VerdictStatus, ami_arn
from imageprov.policy import evaluate_images
from imageprov.policy.schema import parse_policy
from imageprov.sources.aws.trail_documents import read_document
from tests.helpers import trail

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
ROLE = trail.role_identity("ImageBuild", "packer-1", path="/build/")
POLICY = {
    "version": 1,
    "delivery_window": "2h",
    "internal_networks": ["52.94.76.0/24"],
    "share_targets": ["444455556666"],
    "builders": [
        {"name": "pipeline", "roles": ["arn:aws:iam::111122223333:role/build/ImageBuild"],
         "networks": ["10.20.0.0/16", "2600:1f18:4000::/40"],
         "user_agents": ["*Packer/*"], "actions": ["create", "copy"]},
        {"name": "image-builder", "services": ["imagebuilder.amazonaws.com"]},
    ],
}
PACKER = "APN/1.0 HashiCorp/1.0 Packer/1.11.2 (+https://www.packer.io)"


def _ami(image_id: str, created: datetime = T0, **extra) -> Image:
    return Image(ref=ami_arn("us-east-1", trail.ACCOUNT, image_id), platform=Platform.AWS,
                 kind=ImageKind.AMI, account=trail.ACCOUNT, region="us-east-1",
                 native_id=image_id, created=created, **extra)


def _judge(images, records, policy=None, now=NOW):
    document = read_document(json.dumps({"Records": records}).encode(), "t.json")
    assert document.problems == []
    spans = {(a, r): [(f, l)] for a, r, f, l in document.span_times()}
    parsed = parse_policy(yaml.safe_dump(policy or POLICY), "policy.yaml")
    return evaluate_images(images, document.events, parsed, spans, now).verdicts


def _one(image, records, **kw):
    return _judge([image], records, **kw)[image.ref]


def test_matching_builder_approves():
    verdict = _one(_ami("ami-1"), [trail.create_image(ROLE, T0, "ami-1", agent=PACKER)])
    assert verdict.status is VerdictStatus.APPROVED
    assert verdict.rule == "pipeline"
    assert verdict.event_id is not None


def test_ipv6_builder_network_approves():
    record = trail.create_image(ROLE, T0, "ami-1", agent=PACKER, ip="2600:1f18:4000::7")
    assert _one(_ami("ami-1"), [record]).status is VerdictStatus.APPROVED


def test_wrong_user_agent_flags_agent():
    verdict = _one(_ami("ami-1"), [trail.create_image(ROLE, T0, "ami-1", agent="curl/8")])
    assert verdict.status is VerdictStatus.FLAGGED
    assert verdict.flags == (Flag.UNAPPROVED_AGENT,)
    assert verdict.rule == "builder:pipeline"


def test_unlisted_principal_unexpected_actor():
    user = trail.user_identity("mallory")
    verdict = _one(_ami("ami-1"), [trail.create_image(user, T0, "ami-1", agent=PACKER)])
    assert verdict.flags == (Flag.UNEXPECTED_ACTOR,)
    assert verdict.actor == "arn:aws:iam::111122223333:user/mallory"


def test_listed_public_egress_not_external():
    record = trail.create_image(ROLE, T0, "ami-1", agent=PACKER, ip="52.94.76.9")
    verdict = _one(_ami("ami-1"), [record])
    assert Flag.EXTERNAL_NETWORK not in verdict.flags
    assert verdict.flags == (Flag.UNEXPECTED_ACTOR,)
    assert "outside the builder's networks" in verdict.reason


def test_public_address_flags_external():
    record = trail.create_image(ROLE, T0, "ami-1", agent=PACKER, ip="172.64.1.1")
    verdict = _one(_ami("ami-1"), [record])
    assert verdict.status is VerdictStatus.FLAGGED
    assert Flag.EXTERNAL_NETWORK in verdict.flags


def test_documentation_address_flags_external():
    user = trail.user_identity("mallory")
    record = trail.create_image(user, T0, "ami-1", agent=PACKER, ip="198.51.100.7")
    verdict = _one(_ami("ami-1"), [record])
    assert verdict.status is VerdictStatus.FLAGGED
    assert verdict.flags == (Flag.UNEXPECTED_ACTOR, Flag.EXTERNAL_NETWORK)
    assert "called from public address 198.51.100.7" in verdict.reason


def test_teredo_address_flags_external():
    record = trail.create_image(ROLE, T0, "ami-1", agent=PACKER,
                                ip="2001:0:4136:e378:8000:63bf:3fff:fdd2")
    verdict = _one(_ami("ami-1"), [record])
    assert Flag.EXTERNAL_NETWORK in verdict.flags


def test_mapped_builder_network_approves_ipv4():
    policy = json.loads(json.dumps(POLICY))
    policy["builders"][0]["networks"] = ["::ffff:10.20.0.0/112"]
    record = trail.create_image(ROLE, T0, "ami-1", agent=PACKER, ip="10.20.4.17")
    verdict = _one(_ami("ami-1"), [record], policy=policy)
    assert verdict.status is VerdictStatus.APPROVED


def test_aws_internal_never_external_nor_approved():
    record = trail.create_image(ROLE, T0, "ami-1", agent=PACKER, ip="AWS Internal")
    verdict = _one(_ami("ami-1"), [record])
    assert Flag.EXTERNAL_NETWORK not in verdict.flags
    assert verdict.status is VerdictStatus.FLAGGED
    assert "hidden (AWS Internal)" in verdict.reason


def test_aws_internal_without_network_rule_approved():
    policy = json.loads(json.dumps(POLICY))
    del policy["builders"][0]["networks"]
    record = trail.create_image(ROLE, T0, "ami-1", agent=PACKER, ip="AWS Internal")
    assert _one(_ami("ami-1"), [record], policy=policy).status is VerdictStatus.APPROVED


def test_named_service_approves_its_calls():
    slr = trail.role_identity("AWSServiceRoleForImageBuilder", "ib",
                              path="/aws-service-role/imagebuilder.amazonaws.com/")
    slr["invokedBy"] = "imagebuilder.amazonaws.com"
    record = trail.create_image(slr, T0, "ami-1", ip="imagebuilder.amazonaws.com",
                                agent="imagebuilder.amazonaws.com")
    verdict = _one(_ami("ami-1"), [record])
    assert verdict.status is VerdictStatus.APPROVED
    assert verdict.rule == "image-builder"


def test_unnamed_service_not_approved():
    backup = trail.role_identity("AWSBackupDefaultServiceRole", "backup")
    backup["invokedBy"] = "backup.amazonaws.com"
    record = trail.create_image(backup, T0, "ami-1", ip="backup.amazonaws.com",
                                agent="backup.amazonaws.com")
    verdict = _one(_ami("ami-1"), [record])
    assert verdict.flags == (Flag.UNEXPECTED_ACTOR,)
    assert Flag.EXTERNAL_NETWORK not in verdict.flags


def test_service_call_for_listed_role_needs_service():
    # The pipeline's own role, used by a service on its behalf, is not the pipeline.
    role = dict(ROLE, invokedBy="ec2.amazonaws.com")
    record = trail.create_image(role, T0, "ami-1", ip="ec2.amazonaws.com", agent=PACKER)
    verdict = _one(_ami("ami-1"), [record])
    assert verdict.status is VerdictStatus.FLAGGED
    assert verdict.flags == (Flag.UNEXPECTED_ACTOR,)


def test_builder_needs_every_identity_criterion():
    policy = {"version": 1, "builders": [
        {"name": "both", "principals": ["arn:aws:sts::*:assumed-role/ImageBuild/packer-*"],
         "roles": ["arn:aws:iam::111122223333:role/build/ImageBuild"]}]}
    other = trail.role_identity("ImageBuild", "evil", path="/build/")
    flagged = _one(_ami("ami-1"), [trail.create_image(other, T0, "ami-1")], policy=policy)
    assert flagged.status is VerdictStatus.FLAGGED
    assert flagged.flags == (Flag.UNEXPECTED_ACTOR,)
    assert "builder 'both' matches its roles but not its principals" in flagged.reason
    approved = _one(_ami("ami-1"), [trail.create_image(ROLE, T0, "ami-1")], policy=policy)
    assert approved.status is VerdictStatus.APPROVED


def test_service_builder_rejects_direct_role_call():
    policy = {"version": 1, "builders": [
        {"name": "image-builder", "services": ["imagebuilder.amazonaws.com"],
         "roles": ["arn:aws:iam::111122223333:role/ImageBuilderInstance"]}]}
    role = trail.role_identity("ImageBuilderInstance", "i-0abc")
    direct = _one(_ami("ami-1"), [trail.create_image(role, T0, "ami-1")], policy=policy)
    assert direct.status is VerdictStatus.FLAGGED
    assert direct.flags == (Flag.UNEXPECTED_ACTOR,)
    assert "builder 'image-builder' matches its roles but not its services" in direct.reason
    through = dict(role, invokedBy="imagebuilder.amazonaws.com")
    record = trail.create_image(through, T0, "ami-1", ip="imagebuilder.amazonaws.com")
    assert _one(_ami("ami-1"), [record], policy=policy).status is VerdictStatus.APPROVED


def test_builder_order_keeps_network_decision():
    role = ["arn:aws:iam::111122223333:role/build/ImageBuild"]
    broad = {"name": "anywhere", "roles": role}
    office = {"name": "office-egress", "roles": role, "networks": ["198.51.100.0/24"]}
    record = trail.create_image(ROLE, T0, "ami-1", ip="198.51.100.7")
    for builders in ([broad, office], [office, broad]):
        policy = {"version": 1, "builders": builders}
        verdict = _one(_ami("ami-1"), [record], policy=policy)
        assert verdict.status is VerdictStatus.APPROVED
        assert verdict.rule == "office-egress"


def test_root_flagged_even_from_inside():
    record = trail.create_image(trail.root_identity(), T0, "ami-1", agent=PACKER)
    verdict = _one(_ami("ami-1"), [record])
    assert verdict.flags[0] is Flag.ROOT
    assert verdict.rule == "root"


def test_public_share_flags_public():
    records = [trail.create_image(ROLE, T0, "ami-1", agent=PACKER),
               trail.share_image(ROLE, T0 + timedelta(minutes=1), "ami-1", {"group": "all"})]
    verdict = _one(_ami("ami-1"), records)
    assert verdict.status is VerdictStatus.FLAGGED
    assert verdict.flags == (Flag.PUBLIC,)


def test_foreign_share_flags_shared():
    records = [trail.create_image(ROLE, T0, "ami-1", agent=PACKER),
               trail.share_image(ROLE, T0 + timedelta(minutes=1), "ami-1",
                                 {"userId": "999988887777"}),
               trail.share_image(ROLE, T0 + timedelta(minutes=2), "ami-1",
                                 {"userId": "444455556666"})]
    verdict = _one(_ami("ami-1"), records)
    assert verdict.flags == (Flag.SHARED,)
    assert "999988887777" in verdict.reason
    assert "444455556666" not in verdict.reason


def test_revoked_share_clears_flag():
    revoke = trail.record(
        "ModifyImageAttribute", ROLE, T0 + timedelta(minutes=2),
        request={"imageId": "ami-1", "attributeType": "launchPermission",
                 "launchPermission": {"remove": {"items": [{"group": "all"}]}}},
        response={"_return": True})
    records = [trail.create_image(ROLE, T0, "ami-1", agent=PACKER),
               trail.share_image(ROLE, T0 + timedelta(minutes=1), "ami-1", {"group": "all"}),
               revoke]
    assert _one(_ami("ami-1"), records).status is VerdictStatus.APPROVED


def test_inventory_public_flag_counts():
    verdict = _one(_ami("ami-1", public=True),
                   [trail.create_image(ROLE, T0, "ami-1", agent=PACKER)])
    assert verdict.flags == (Flag.PUBLIC,)


def test_young_image_without_event_pending():
    image = _ami("ami-9", created=NOW - timedelta(minutes=30))
    verdict = _one(image, trail.noise(T0, 2))
    assert verdict.status is VerdictStatus.PENDING
    assert verdict.rule == "delivery-window"


def test_old_image_without_event_unattributed():
    verdict = _one(_ami("ami-9", created=T0 + timedelta(seconds=1)), trail.noise(T0, 3))
    assert verdict.status is VerdictStatus.UNATTRIBUTED
    assert "2026-11-02T09:00:00Z to 2026-11-02T09:00:02Z" in verdict.reason


def test_image_older_than_logs_says_so():
    verdict = _one(_ami("ami-9", created=T0 - timedelta(days=300)), trail.noise(T0, 3))
    assert "before the logs read begin" in verdict.reason


def test_no_logs_read_says_so():
    image = Image(ref=ami_arn("eu-west-1", "999988887777", "ami-9"), platform=Platform.AWS,
                  kind=ImageKind.AMI, account="999988887777", region="eu-west-1",
                  native_id="ami-9", created=T0)
    verdict = _one(image, trail.noise(T0, 1))
    assert "no audit logs have been read for 999988887777/eu-west-1" in verdict.reason


def test_exception_excepts_until_expiry():
    policy = dict(POLICY, exceptions=[{"image": "ami-1", "reason": "vendor appliance",
                                       "expires": "2026-11-10"}])
    user = trail.user_identity("mallory")
    records = [trail.create_image(user, T0, "ami-1")]
    before = _one(_ami("ami-1"), records, policy=policy)
    after = _one(_ami("ami-1"), records, policy=policy, now=datetime(2026, 11, 11, tzinfo=UTC))
    assert before.status is VerdictStatus.EXCEPTED
    assert "vendor appliance" in before.reason
    assert after.status is VerdictStatus.FLAGGED
    assert after.flags == (Flag.UNEXPECTED_ACTOR,)


def test_copy_attributed_to_copier():
    records = [trail.copy_image(ROLE, T0, "ami-2", "ami-1", "us-west-2", agent=PACKER)]
    verdict = _one(_ami("ami-2"), records)
    assert verdict.status is VerdictStatus.APPROVED
    assert verdict.actor.endswith("assumed-role/ImageBuild/packer-1")


def test_copy_of_flagged_source_flagged():
    source = Image(ref=ami_arn("us-west-2", trail.ACCOUNT, "ami-1"), platform=Platform.AWS,
                   kind=ImageKind.AMI, account=trail.ACCOUNT, region="us-west-2",
                   native_id="ami-1", created=T0)
    mallory = trail.user_identity("mallory")
    records = [
        trail.create_image(mallory, T0, "ami-1", region="us-west-2"),
        trail.copy_image(ROLE, T0 + timedelta(minutes=5), "ami-2", "ami-1", "us-west-2",
                         agent=PACKER),
    ]
    verdicts = _judge([source, _ami("ami-2")], records)
    copy = verdicts[ami_arn("us-east-1", trail.ACCOUNT, "ami-2")]
    assert verdicts[source.ref].status is VerdictStatus.FLAGGED
    assert copy.status is VerdictStatus.FLAGGED
    assert copy.flags == (Flag.UNAPPROVED_SOURCE,)
    assert "copied from ami-1, which is flagged" in copy.reason


def test_copy_of_pending_source_pending():
    young = NOW - timedelta(minutes=30)
    source = Image(ref=ami_arn("us-west-2", trail.ACCOUNT, "ami-1"), platform=Platform.AWS,
                   kind=ImageKind.AMI, account=trail.ACCOUNT, region="us-west-2",
                   native_id="ami-1", created=young)
    copy = trail.copy_image(ROLE, young + timedelta(minutes=5), "ami-2", "ami-1",
                            "us-west-2", agent=PACKER)
    verdicts = _judge([source, _ami("ami-2", created=young)], [copy])
    waiting = verdicts[ami_arn("us-east-1", trail.ACCOUNT, "ami-2")]
    assert verdicts[source.ref].status is VerdictStatus.PENDING
    assert waiting.status is VerdictStatus.PENDING
    assert waiting.rule == "copy-source"
    assert "copied from ami-1, which is pending" in waiting.reason
    # Once the source's creation event arrives, the copy is approved.
    create = trail.create_image(ROLE, young, "ami-1", agent=PACKER, region="us-west-2")
    verdicts = _judge([source, _ami("ami-2", created=young)], [create, copy])
    assert verdicts[ami_arn("us-east-1", trail.ACCOUNT, "ami-2")].status is (
        VerdictStatus.APPROVED)


def test_copy_of_public_source_approved():
    source = Image(ref=ami_arn("us-west-2", trail.ACCOUNT, "ami-1"), platform=Platform.AWS,
                   kind=ImageKind.AMI, account=trail.ACCOUNT, region="us-west-2",
                   native_id="ami-1", created=T0, public=True)
    records = [
        trail.create_image(ROLE, T0, "ami-1", agent=PACKER, region="us-west-2"),
        trail.copy_image(ROLE, T0 + timedelta(minutes=5), "ami-2", "ami-1", "us-west-2",
                         agent=PACKER),
    ]
    verdicts = _judge([source, _ami("ami-2")], records)
    assert verdicts[source.ref].flags == (Flag.PUBLIC,)
    assert verdicts[ami_arn("us-east-1", trail.ACCOUNT, "ami-2")].status is (
        VerdictStatus.APPROVED)


def test_failed_call_before_success_ignored():
    mallory = trail.user_identity("mallory")
    denied = trail.create_image(mallory, T0, None, error="AccessDenied")
    denied["responseElements"] = {"imageId": "ami-1"}
    records = [denied, trail.create_image(ROLE, T0 + timedelta(minutes=1), "ami-1",
                                          agent=PACKER)]
    verdict = _one(_ami("ami-1"), records)
    assert verdict.status is VerdictStatus.APPROVED
    assert verdict.event_id == records[1]["eventID"]


def test_earliest_push_attributes_digest():
    ci = trail.role_identity("ImageBuild", "ci", path="/build/")
    policy = {"version": 1, "builders": [
        {"name": "ci", "roles": ["arn:aws:iam::111122223333:role/build/ImageBuild"]}]}
    digest = "sha256:" + "ab" * 32
    image = Image(ref=f"111122223333.dkr.ecr.us-east-1.amazonaws.com/app@{digest}",
                  platform=Platform.AWS, kind=ImageKind.CONTAINER, account=trail.ACCOUNT,
                  region="us-east-1", native_id=digest, digest=digest,
                  registry="111122223333.dkr.ecr.us-east-1.amazonaws.com",
                  repository="app", names=("latest", "v2"), created=T0)
    records = [
        trail.put_image(trail.user_identity("mallory"), T0 + timedelta(minutes=9), "app",
                        "latest", digest),
        trail.put_image(ci, T0, "app", "v2", digest),
    ]
    verdict = _one(image, records, policy=policy)
    assert verdict.status is VerdictStatus.FLAGGED
    assert verdict.flags == (Flag.UNEXPECTED_ACTOR,)
    assert verdict.event_id == records[0]["eventID"]
    assert verdict.reason.startswith("tag latest was moved here")

    records[0] = trail.put_image(ci, T0 + timedelta(minutes=9), "app", "latest", digest)
    verdict = _one(image, records, policy=policy)
    assert verdict.status is VerdictStatus.APPROVED
    assert verdict.event_id == records[1]["eventID"]


def test_copy_of_deregistered_bad_source_flagged():
    mallory = trail.user_identity("mallory")
    records = [
        trail.create_image(mallory, T0, "ami-1", ip="8.8.4.4"),
        trail.record("DeregisterImage", mallory, T0 + timedelta(minutes=9),
                     request={"imageId": "ami-1"}, response={"_return": True}),
        trail.copy_image(ROLE, T0 + timedelta(minutes=5), "ami-2", "ami-1", "us-east-1",
                         agent=PACKER),
    ]
    verdict = _one(_ami("ami-2"), records)
    assert verdict.status is VerdictStatus.FLAGGED
    assert verdict.flags == (Flag.UNAPPROVED_SOURCE,)


def test_import_name_cannot_claim_created_image():
    mallory = trail.user_identity("mallory")
    imported = trail.record(
        "ImportImage", ROLE, T0, request={"roleName": "vmimport"},
        response={"importTaskId": "import-ami-0abc1234", "status": "active"})
    created = trail.create_image(mallory, T0 + timedelta(minutes=3), "ami-7",
                                 ip="8.8.8.8", name="import-ami-0abc1234")
    image = _ami("ami-7", names=("import-ami-0abc1234",))
    verdict = _one(image, [imported, created])
    assert verdict.status is VerdictStatus.FLAGGED
    assert verdict.event_id == created["eventID"]
    renamed = _one(_ami("ami-8", names=("import-ami-0abc1234",)), [imported])
    assert renamed.event_id == imported["eventID"]


def _import_task(when=T0):
    return trail.record(
        "ImportImage", ROLE, when, request={"roleName": "vmimport"},
        response={"importTaskId": "import-ami-0abc1234", "status": "active"})


def test_import_name_on_two_images_unattributed():
    first = _ami("ami-7", created=T0 + timedelta(hours=1), names=("import-ami-0abc1234",))
    second = _ami("ami-8", created=T0 + timedelta(hours=2), names=("import-ami-0abc1234",))
    verdicts = _judge([first, second], [_import_task()])
    for image in (first, second):
        verdict = verdicts[image.ref]
        assert verdict.status is VerdictStatus.UNATTRIBUTED
        assert verdict.event_id is None
        assert "names 2 images (ami-7, ami-8)" in verdict.reason


def test_import_before_task_call_unattributed():
    early = _ami("ami-7", created=T0 - timedelta(hours=1), names=("import-ami-0abc1234",))
    assert _one(early, [_import_task()]).status is VerdictStatus.UNATTRIBUTED
    later = _ami("ami-7", created=T0 + timedelta(hours=1), names=("import-ami-0abc1234",))
    assert _one(later, [_import_task()]).event_id is not None


def test_root_through_service_still_root():
    root = dict(trail.root_identity(), invokedBy="cloudformation.amazonaws.com")
    policy = {"version": 1, "builders": [
        {"name": "stacks", "services": ["cloudformation.amazonaws.com"]}]}
    record = trail.create_image(root, T0, "ami-1", ip="cloudformation.amazonaws.com")
    verdict = _one(_ami("ami-1"), [record], policy=policy)
    assert verdict.status is VerdictStatus.FLAGGED
    assert verdict.flags == (Flag.ROOT,)


def test_exception_does_not_hide_public_share():
    policy = dict(POLICY, exceptions=[{"image": "ami-1", "reason": "vendor",
                                       "expires": "2027-01-01"}])
    records = [trail.share_image(trail.user_identity("mallory"), T0, "ami-1",
                                 {"group": "all"})]
    verdict = _one(_ami("ami-1"), records, policy=policy)
    assert verdict.status is VerdictStatus.FLAGGED
    assert verdict.flags == (Flag.PUBLIC,)
    assert "excepted until" in verdict.reason


def test_remove_public_and_add_account_together():
    both = trail.record(
        "ModifyImageAttribute", ROLE, T0 + timedelta(minutes=2),
        request={"imageId": "ami-1", "attributeType": "launchPermission",
                 "launchPermission": {"remove": {"items": [{"group": "all"}]},
                                      "add": {"items": [{"userId": "444455556666"}]}}},
        response={"_return": True})
    records = [trail.create_image(ROLE, T0, "ami-1", agent=PACKER),
               trail.share_image(ROLE, T0 + timedelta(minutes=1), "ami-1", {"group": "all"}),
               both]
    assert _one(_ami("ami-1"), records).status is VerdictStatus.APPROVED


def test_reset_launch_permission_clears_public():
    reset = trail.record(
        "ResetImageAttribute", ROLE, T0 + timedelta(minutes=2),
        request={"imageId": "ami-1", "attribute": "launchPermission"},
        response={"_return": True})
    records = [trail.create_image(ROLE, T0, "ami-1", agent=PACKER),
               trail.share_image(ROLE, T0 + timedelta(minutes=1), "ami-1", {"group": "all"}),
               trail.share_image(ROLE, T0 + timedelta(minutes=1), "ami-1",
                                 {"userId": "999988887777"}),
               reset]
    assert _one(_ami("ami-1"), records).status is VerdictStatus.APPROVED


def test_failed_reset_keeps_public():
    reset = trail.record(
        "ResetImageAttribute", ROLE, T0 + timedelta(minutes=2),
        request={"imageId": "ami-1", "attribute": "launchPermission"},
        error="Client.UnauthorizedOperation")
    records = [trail.create_image(ROLE, T0, "ami-1", agent=PACKER),
               trail.share_image(ROLE, T0 + timedelta(minutes=1), "ami-1", {"group": "all"}),
               reset]
    assert _one(_ami("ami-1"), records).flags == (Flag.PUBLIC,)


def test_same_second_grant_and_removal_flag():
    when = T0 + timedelta(minutes=1)
    remove = trail.record(
        "ModifyImageAttribute", ROLE, when,
        request={"imageId": "ami-1", "attributeType": "launchPermission",
                 "launchPermission": {"remove": {"items": [{"group": "all"}]}}},
        response={"_return": True})
    grant = trail.share_image(ROLE, when, "ami-1", {"group": "all"})
    create = trail.create_image(ROLE, T0, "ami-1", agent=PACKER)
    # Event ids decide the order of equal times, so both orders of the ids are tried.
    for first, second in (("0", "f"), ("f", "0")):
        remove["eventID"] = first * 8 + "-0000-4000-8000-" + "0" * 12
        grant["eventID"] = second * 8 + "-0000-4000-8000-" + "0" * 12
        verdict = _one(_ami("ami-1"), [create, grant, remove])
        assert verdict.flags == (Flag.PUBLIC,)


def _with_validation(records, validation, platform="aws"):
    document = read_document(json.dumps({"Records": records}).encode(), "t.json")
    events = [event.model_copy(update={"log_validation": validation,
                                       "validation_detail": "for the test",
                                       "platform": platform})
              for event in document.events]
    spans = {(a, r): [(f, l)] for a, r, f, l in document.span_times()}
    return events, spans


def _judge_validated(validation, require, platform="aws"):
    from imageprov.model import LogValidation

    image = _ami("ami-1")
    events, spans = _with_validation(
        [trail.create_image(ROLE, T0, "ami-1", agent=PACKER)], LogValidation(validation),
        platform)
    parsed = parse_policy(yaml.safe_dump({**POLICY, "require_validated_logs": require}),
                          "policy.yaml")
    return evaluate_images([image], events, parsed, spans, NOW).verdicts[image.ref]


def test_failed_log_never_approves():
    verdict = _judge_validated("failed", require=False)
    assert verdict.status is VerdictStatus.FLAGGED
    assert verdict.flags == (Flag.UNVALIDATED_LOG,)
    assert verdict.rule == "log-validation"


def test_required_validation_flags_unvalidated():
    verdict = _judge_validated("unvalidated", require=True)
    assert verdict.status is VerdictStatus.FLAGGED
    assert verdict.rule == "require_validated_logs"
    assert _judge_validated("validated", require=True).status is VerdictStatus.APPROVED
    assert _judge_validated("unvalidated", require=False).status is VerdictStatus.APPROVED


def test_required_validation_skips_other_platforms():
    """Only CloudTrail has digests, so the requirement leaves other platforms alone."""
    verdict = _judge_validated("unvalidated", require=True, platform="azure")
    assert Flag.UNVALIDATED_LOG not in verdict.flags
