"""The OpenAPI 3.1 description of the gate, built from the pydantic models of its bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from imageprov.api.references import MAX_LENGTH, VISIBLE_PATTERN

IMAGE_DESCRIPTION = (
    "An AMI id or ARN, an Azure image resource id, a GCP image path "
    "(projects/P/global/images/NAME), a container reference by digest "
    "(registry/repository@sha256:...) or by tag (registry/repository:tag)."
)


class Decision(BaseModel):
    """The answer for one image."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(description="The reference as requested.")
    ref: str | None = Field(description="The stored image it names; for a tag, the "
                                        "reference by the digest the tag names now.")
    decision: Literal["allow", "deny"]
    status: Literal["approved", "flagged", "unattributed", "excepted", "pending",
                    "unknown", "ambiguous"]
    reason: str
    flags: list[str]
    rule: str | None = Field(description="The builder that approved the image or the "
                                          "check that flagged it.")
    decided_at: datetime | None = Field(description="When the verdict was made.")
    checked_at: datetime | None = Field(description="When the verdict was last "
                                                    "confirmed under the policy.")
    policy_hash: str = Field(description="SHA-256 of the policy file behind the verdict.")
    tag: str | None = Field(description="registry/repository:tag when the image was "
                                        "requested by tag.")


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: str = Field(min_length=1, max_length=MAX_LENGTH, pattern=VISIBLE_PATTERN,
                       description=IMAGE_DESCRIPTION)


class Error(BaseModel):
    error: str


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    policy_hash: str
    problems: list[str]


def _schemas() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for model in (Decision, DecisionRequest, Error, Health):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}",
                                         mode="serialization")
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    found["AdmissionReview"] = {
        "type": "object",
        "description": "An admission.k8s.io/v1 AdmissionReview with `request` "
                       "(sent) or `response` (returned).",
        "required": ["apiVersion", "kind"],
        "properties": {
            "apiVersion": {"type": "string", "const": "admission.k8s.io/v1"},
            "kind": {"type": "string", "const": "AdmissionReview"},
            "request": {"type": "object"},
            "response": {"type": "object"},
        },
    }
    return found


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


_ERRORS = {
    "401": _json("Error", "Missing, invalid or revoked bearer token."),
    "503": _json("Error", "The store cannot be read."),
}


def describe(version: str) -> dict[str, Any]:
    """Return the OpenAPI document of the gate."""
    decision_responses = {
        "200": _json("Decision", "The decision, allow or deny."),
        "422": _json("Error", "The image is not a reference of any known form."),
        **_ERRORS,
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "imageprov launch gate", "version": version,
                 "description": "May this image be launched? Answers from stored "
                                "provenance verdicts."},
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(),
        },
        "paths": {
            "/healthz": {"get": {
                "operationId": "health", "summary": "Health of the gate; no token needed.",
                "security": [],
                "responses": {"200": _json("Health", "The gate answers."),
                              "503": _json("Health", "The store cannot be read.")},
            }},
            "/v1/verdicts/{image}": {"get": {
                "operationId": "getVerdict", "summary": "Decide one image.",
                "parameters": [{
                    "name": "image", "in": "path", "required": True,
                    "description": IMAGE_DESCRIPTION + " Percent-encode it.",
                    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_LENGTH,
                               "pattern": VISIBLE_PATTERN},
                }],
                "responses": decision_responses,
            }},
            "/v1/decisions": {"post": {
                "operationId": "decide", "summary": "Decide one image named in the body.",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/DecisionRequest"}}}},
                "responses": {**decision_responses,
                              "400": _json("Error", "The body is not JSON."),
                              "413": _json("Error", "The body is too large.")},
            }},
            "/v1/admission": {"post": {
                "operationId": "admit",
                "summary": "Kubernetes ValidatingAdmissionWebhook for AdmissionReview v1.",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/AdmissionReview"}}}},
                "responses": {
                    "200": _json("AdmissionReview", "The review with its response."),
                    "400": _json("Error", "The body is not an AdmissionReview v1 request."),
                    "413": _json("Error", "The body is too large."),
                    **_ERRORS,
                },
            }},
            "/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This description.",
                "responses": {"200": {"description": "The OpenAPI document.",
                                      "content": {"application/json": {
                                          "schema": {"type": "object"}}}},
                              "401": _ERRORS["401"]},
            }},
        },
    }
