"""A local stand-in for the two vulnerability services the security audit asks, faithful to their public shapes.

npm's registry, at the root (npm rewrites the public registry's tarball URLs to the configured registry's origin,
so it cannot live under a path) (https://github.com/npm/registry/blob/main/docs/REGISTRY-API.md, "bulk advisory"
endpoint, as `npm audit` calls it):
    POST /-/npm/v1/security/advisories/bulk   {"<package>": ["<version>", ...]} (possibly gzip-encoded)
         -> {"<package>": [{"id", "url", "title", "severity", "vulnerable_versions", "cwe", "cvss"}]}
    GET  anything else                        proxied to the public registry (packuments and tarballs, which
                                              `npm audit` reads to work out which versions fix what)
OSV (https://google.github.io/osv.dev/post-v1-query/), as `pip-audit --vulnerability-service osv --osv-url` calls it:
    POST /v1/query  {"package": {"name", "ecosystem"}, "version"} -> {"vulns": [OSV records]} or {}

The advisories are a few real ones from the GitHub Advisory Database, copied for the packages the sandbox's
application pins. Differences from the real services: this short list only; the npm endpoint returns every advisory
of a named package and leaves matching the versions to npm (which re-checks each range against what is installed).
"""

from __future__ import annotations

import gzip
import json

import httpx
from packaging.version import InvalidVersion, Version
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PUBLIC_REGISTRY = "https://registry.npmjs.org"

NPM_ADVISORIES = {
    "minimist": [
        {"id": 1096401, "url": "https://github.com/advisories/GHSA-xvch-5gv4-984h",
         "title": "Prototype Pollution in minimist", "severity": "critical",
         "vulnerable_versions": ">=1.0.0 <1.2.6", "cwe": ["CWE-1321"],
         "cvss": {"score": 9.8, "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}},
        {"id": 1096402, "url": "https://github.com/advisories/GHSA-vh95-rmgr-6w4m",
         "title": "Prototype Pollution in minimist", "severity": "moderate",
         "vulnerable_versions": ">=1.0.0 <1.2.3", "cwe": ["CWE-1321"],
         "cvss": {"score": 5.6, "vectorString": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:L/I:L/A:L"}},
    ],
    "debug": [
        {"id": 1096403, "url": "https://github.com/advisories/GHSA-gxpj-cx7g-858c",
         "title": "Regular Expression Denial of Service in debug", "severity": "low",
         "vulnerable_versions": ">=2.0.0 <2.6.9", "cwe": ["CWE-400"],
         "cvss": {"score": 3.7, "vectorString": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:L"}},
    ],
}

OSV_ADVISORIES = [
    {"id": "GHSA-jjg7-2v4v-x38h", "modified": "2024-07-10T00:00:00Z", "published": "2024-04-11T00:00:00Z",
     "aliases": ["CVE-2024-3651", "PYSEC-2024-60"],
     "summary": "Internationalized Domain Names in Applications (IDNA) vulnerable to denial of service from "
                "specially crafted inputs to idna.encode",
     "details": "A specially crafted argument to the idna.encode() function could consume significant resources.",
     "affected": [{"package": {"name": "idna", "ecosystem": "PyPI", "purl": "pkg:pypi/idna"},
                   "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.7"}]}]}],
     "database_specific": {"severity": "MODERATE", "cwe_ids": ["CWE-400"]}},
]


def _in_range(version: str, events: list[dict]) -> bool:
    """OSV ECOSYSTEM range semantics: introduced <= version < fixed (PEP 440 ordering)."""
    try:
        v = Version(version)
    except InvalidVersion:
        return False
    affected = False
    for event in events:
        if "introduced" in event:
            affected = event["introduced"] == "0" or v >= Version(event["introduced"])
        elif "fixed" in event and affected and v >= Version(event["fixed"]):
            affected = False
    return affected


def osv_vulns(name: str, ecosystem: str, version: str) -> list[dict]:
    """The OSV records affecting one package version."""
    found = []
    for record in OSV_ADVISORIES:
        for affected in record["affected"]:
            package = affected["package"]
            if package["ecosystem"] == ecosystem and package["name"].lower() == name.lower() and any(
                    r["type"] == "ECOSYSTEM" and _in_range(version, r["events"]) for r in affected["ranges"]):
                found.append(record)
                break
    return found


def make_app(upstream: str = PUBLIC_REGISTRY) -> Starlette:
    async def bulk(request: Request) -> JSONResponse:
        raw = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        asked = json.loads(raw or b"{}")
        return JSONResponse({name: NPM_ADVISORIES[name] for name in asked if name in NPM_ADVISORIES})

    async def proxy(request: Request) -> Response:
        async with httpx.AsyncClient(timeout=60, follow_redirects=True) as client:
            upstream_response = await client.get(f"{upstream}/{request.path_params['path']}",
                                                 headers={"accept": request.headers.get("accept", "*/*")})
        headers = {k: v for k, v in upstream_response.headers.items() if k.lower() in ("content-type", "etag")}
        return Response(upstream_response.content, status_code=upstream_response.status_code, headers=headers)

    async def osv_query(request: Request) -> JSONResponse:
        body = await request.json()
        package, version = body.get("package") or {}, body.get("version")
        if not package.get("name") or not version:
            return JSONResponse({"code": 3, "message": "Invalid query."}, status_code=400)
        vulns = osv_vulns(package["name"], package.get("ecosystem", "PyPI"), version)
        return JSONResponse({"vulns": vulns} if vulns else {})

    return Starlette(routes=[
        Route("/osv/v1/query", osv_query, methods=["POST"]),
        Route("/-/npm/v1/security/advisories/bulk", bulk, methods=["POST"]),
        Route("/{path:path}", proxy, methods=["GET"]),
    ])
