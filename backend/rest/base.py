"""Base classes of the REST API's bodies (:mod:`backend.rest.models`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ApiModel(BaseModel):
    """Base of every response body.  Unknown fields are ignored when parsing, so a client
    built against an older version keeps working when the server adds a field."""

    model_config = ConfigDict(extra="ignore")


class RequestModel(BaseModel):
    """Base of request bodies: an unknown field is an error (422)."""

    model_config = ConfigDict(extra="forbid")
