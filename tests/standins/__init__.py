"""Local stand-ins for the SendGrid and Twilio HTTP APIs, for tests and benchmarks.

Each stand-in is a real HTTP server on 127.0.0.1 (ephemeral port) that checks every request against the
provider's published OpenAPI description *and* the business rules the description cannot state, then answers
with the provider's own status codes and error shapes. Use them through the context managers or fixtures:

    from standins import sendgrid_api, twilio_api

    with sendgrid_api.running_sendgrid_standin() as sg:     # or the `sendgrid_standin` fixture
        channel = SendGridChannel(sg.settings(from_email=..., postal_address=...))
        channel.send(message)
        body = sg.accepted[0].json()
        sg.fail_next(429, times=2, retry_after=7)            # inject faults

    sendgrid_standin = sendgrid_api.sendgrid_standin         # reuse the fixture in a test module

Import path: `tests/` has no __init__.py, so pytest puts it on sys.path and this package is `standins`.

This module holds what both stand-ins share about the contracts: where the descriptions live
(`WINBACK_SPECS_DIR`, else `<checkout>/../shared/specs`), how a missing copy is reported (fail under CI,
skip otherwise), and the two request validators a stand-in can use:

- "jsonschema" (default): the description's request schema compiled once into an openapi-schema-validator
  (the library openapi-core itself delegates to); ~0.1 ms (SendGrid) / ~0.05 ms (Twilio) per request.
- "openapi-core": `OpenAPI.from_dict` with servers overridden; also checks security, parameters and media
  type by itself, but costs ~1 ms (SendGrid) / ~4 ms (Twilio: it rebuilds a caster and a format checker
  for each of the 25 form fields per request). Kept as the reference; tests assert both agree.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jsonschema import ValidationError
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4, DRAFT202012

SPECS_DIR_ENV = "WINBACK_SPECS_DIR"
SENDGRID_SPEC = "sendgrid_mail_v3.json"
TWILIO_SPEC = "twilio_api_v2010.json"
REPO_ROOT = Path(__file__).resolve().parents[2]
# openapi-core matches requests against `servers`; every stand-in presents itself under this one URL.
STANDIN_SERVER = "http://standin.invalid"

ValidatorName = Literal["jsonschema", "openapi-core"]
PathPart = str | int


class SpecsNotFoundError(FileNotFoundError):
    """The OpenAPI descriptions are not where the stand-ins look for them."""


@dataclass(frozen=True)
class Violation:
    """One way a request breaks the contract: where (`path` into the body or parameter name) and why."""

    path: tuple[PathPart, ...]
    message: str
    keyword: str = ""


# Read once at import too: a hermetic test fixture that clears WINBACK_* variables must not lose the override.
_SPECS_DIR_AT_IMPORT = os.environ.get(SPECS_DIR_ENV, "").strip()


def specs_dir() -> Path:
    override = os.environ.get(SPECS_DIR_ENV, "").strip() or _SPECS_DIR_AT_IMPORT
    return Path(override) if override else (REPO_ROOT / ".." / "shared" / "specs").resolve()


def spec_path(name: str) -> Path:
    path = specs_dir() / name
    if not path.is_file():
        raise SpecsNotFoundError(
            f"OpenAPI description {name} not found in {specs_dir()}; put the shared specs beside the "
            f"checkout (<checkout>/../shared/specs) or set {SPECS_DIR_ENV}"
        )
    return path


def require_specs() -> None:
    """In a test: fail loudly under CI (a missing contract must not pass as green), skip otherwise."""
    import pytest

    try:
        for name in (SENDGRID_SPEC, TWILIO_SPEC):
            spec_path(name)
    except SpecsNotFoundError as exc:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"{exc} (CI is set, so this is an error)", pytrace=False)
        pytest.skip(str(exc))


@functools.cache
def load_spec(name: str) -> Mapping[str, Any]:
    """The parsed description, shared and cached: treat it as read-only."""
    with spec_path(name).open(encoding="utf-8") as fh:
        return json.load(fh)


def pointer(*parts: str) -> str:
    """A JSON pointer fragment ('#/paths/~1v3~1mail~1send/...') from raw key names."""
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def request_body_fragment(spec_name: str, path: str, method: str, media_type: str) -> str:
    """Pointer to an operation's request body schema, following a `$ref`'d requestBody."""
    spec: Any = load_spec(spec_name)
    body = spec["paths"][path][method]["requestBody"]
    parts: tuple[str, ...] = ("paths", path, method, "requestBody")
    if "$ref" in body:
        parts = tuple(body["$ref"].removeprefix("#/").split("/"))
        parts = tuple(p.replace("~1", "/").replace("~0", "~") for p in parts)
    return pointer(*parts, "content", media_type, "schema")


@functools.cache
def compiled_validator(spec_name: str, fragment: str) -> Any:
    """An openapi-schema-validator for the schema at `fragment`, $refs resolved inside the description."""
    from openapi_schema_validator import OAS30WriteValidator, OAS31Validator

    spec = load_spec(spec_name)
    is_31 = str(spec.get("openapi", "")).startswith("3.1")
    cls = OAS31Validator if is_31 else OAS30WriteValidator  # requests are "write" in OpenAPI 3.0 terms
    uri = f"urn:winback-standin:{spec_name}"
    resource = Resource.from_contents(dict(spec), default_specification=DRAFT202012 if is_31 else DRAFT4)
    registry: Registry[Any] = Registry().with_resource(uri, resource)
    return cls({"$ref": uri + fragment}, registry=registry, format_checker=cls.FORMAT_CHECKER)


def schema_violations(errors: Iterable[ValidationError], prefix: tuple[PathPart, ...] = ()) -> list[Violation]:
    """jsonschema errors as Violations; a missing required property is reported at its own path."""
    found = []
    for error in errors:
        path = (*prefix, *error.absolute_path)
        if error.validator == "required":
            match = re.match(r"'(.+)' is a required property", error.message)
            if match:
                path = (*path, match.group(1))
        found.append(Violation(path, error.message, str(error.validator)))
    return sorted(found, key=lambda v: [str(p) for p in v.path])


@functools.cache
def openapi_core_app(spec_name: str, paths: tuple[str, ...]) -> OpenAPI:
    """openapi-core over the description, limited to `paths`, all servers overridden to STANDIN_SERVER."""
    spec = json.loads(json.dumps(load_spec(spec_name)))  # deep copy: we edit it
    spec["servers"] = [{"url": STANDIN_SERVER}]
    spec["paths"] = {p: spec["paths"][p] for p in paths}
    for item in spec["paths"].values():
        item.pop("servers", None)
        for operation in item.values():
            if isinstance(operation, dict):
                operation.pop("servers", None)
    return OpenAPI.from_dict(spec)


def openapi_core_violations(
    app: OpenAPI,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    content_type: str,
) -> list[Violation]:
    """Everything openapi-core finds wrong with the request, flattened into Violations."""
    request = MockRequest(
        STANDIN_SERVER, method.lower(), path, headers=dict(headers), data=body, content_type=content_type
    )
    try:
        app.validate_request(request)
    except Exception as exc:
        name = getattr(exc, "name", None)
        prefix: tuple[PathPart, ...] = (name,) if isinstance(name, str) else ()
        cause = exc.__cause__
        schema_errors = getattr(cause, "schema_errors", None)
        if schema_errors:
            return schema_violations(schema_errors, prefix)
        return [Violation(prefix, str(exc), type(exc).__name__)]
    return []
