"""Who may call what: the API's authorization, in one table.

``ROUTES`` names, for every route of the app (method and path template), the least role that may call it:
``public`` (no key), ``reader`` < ``engineer`` < ``admin``. ``create_app`` builds every route with
:class:`AuthorizedRoute`, which gives it the :func:`authorize` dependency; that looks the matched route up here
(``request.scope["route"].path`` and the method) and refuses a route without an entry. ``create_app`` then
raises unless :func:`check_app` finds the app's routes and this table the same set, in both directions. No
endpoint names its role itself.

Job routes (``POST /tables/{name}/jobs/{kind}``) need more than the route's role for some requests: the role
is the highest of the route's, ``JOBS[kind]`` (dry run or apply) and ``JOB_PARAMS`` for every parameter given.
Why each entry is what it is:

- **A dry run changes nothing and shows no values** (plans, counts, findings with counts), so every dry run is
  an engineer's, except for the parameters that are admin's outright (below).
- **pii-scan apply is admin's**: it *replaces* the table's PII tags, and the tags decide which columns readers
  get masked. A rescan that no longer finds a column (an engineer ingested enough other values, or restored
  the table to a version without them, and scanned) removes its tag and unmasks it. Lowering a mask is
  admin's by any path; an engineer's dry run shows the findings an admin can then store.
- **masks is admin's, dry run too**: the given policies replace the stored ``masking.<column>`` (the policy
  ``PUT /tables/{name}/policy`` guards), so ``{"masks": {"email": "partial:64"}}`` would switch masking off
  for readers. pii-mask *without* masks re-applies the stored policies, which only ever masks more: engineer.
- **purge is admin's, dry run too**: it destroys every old version (no restore, no time travel afterwards).
- **Retention overrides are admin's when applied**: ``retain`` (vacuum), ``older_than`` (orphans,
  expire-data) and ``column`` (expire-data) replace the retention an admin stored in the policy for this run,
  and an applied vacuum or orphan removal cannot be undone. An engineer applies retention as the policy says
  (destructive, but the admin chose the window) and may dry-run any override to size it.
- Parameters are judged whatever the job kind, so a kind that starts to read one is covered.
- Everything else an engineer may do is undoable by a restore while retention keeps the old versions:
  optimize, tier, dedup (its ``keys``/``order`` too), restore, ingest.

Views: routes marked ``redact`` show version summaries, job parameters, metrics or results, or lineage events.
Delete, update and merge commits (lakehouse's own, and those of Spark or delta-rs) record their predicate there,
and an erasure's predicate names its data subject; for a caller below admin, :func:`redact_predicates` replaces
every value under a key naming a predicate (see :func:`names_predicate`) in these answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final

import orjson
from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from lakehouse.errors import ConfigError, ForbiddenError
from lakehouse.governance.keys import ROLES, Principal, authenticate

PUBLIC: Final = "public"
"""No key needed: the service is up, and the API's own description (it holds no data)."""

ORDER: Final = (PUBLIC, *ROLES)
READS_PII: Final = "admin"
"""The least role that reads unmasked PII (queries, partition values in diffs) and unredacted predicates."""
REDACTED: Final = "[REDACTED]"


@dataclass(frozen=True)
class Rule:
    role: str
    """The least role that may call the route."""
    redact: bool = False
    """The answer shows summaries, job parameters/metrics/results or lineage events: predicates are redacted
    for callers below admin."""
    job_params: bool = False
    """The body is a job request: ``JOBS`` and ``JOB_PARAMS`` may ask for more than ``role``."""


@dataclass(frozen=True)
class JobRule:
    dry_run: str
    apply: str
    why: str

    def role(self, dry_run: bool) -> str:
        return self.dry_run if dry_run else self.apply


ROUTES: Final[Mapping[tuple[str, str], Rule]] = {
    # service
    ("GET", "/health"): Rule(PUBLIC),
    ("GET", "/openapi.json"): Rule(PUBLIC),
    ("GET", "/docs"): Rule(PUBLIC),
    ("GET", "/docs/oauth2-redirect"): Rule(PUBLIC),
    ("GET", "/redoc"): Rule(PUBLIC),
    ("GET", "/metrics"): Rule("reader"),
    # catalog
    ("GET", "/tables"): Rule("reader"),
    ("GET", "/tables/{name}"): Rule("reader"),
    ("GET", "/tables/{name}/storage"): Rule("reader"),
    ("GET", "/tables/{name}/policy"): Rule("reader"),
    ("PUT", "/tables/{name}/policy"): Rule("admin"),
    # history
    ("GET", "/tables/{name}/versions"): Rule("reader", redact=True),
    ("GET", "/tables/{name}/versions/{version}"): Rule("reader", redact=True),
    ("GET", "/tables/{name}/diff"): Rule("reader"),
    ("POST", "/tables/{name}/restore"): Rule("engineer", redact=True),
    # query and ingest
    ("POST", "/query"): Rule("reader"),
    ("POST", "/tables/{name}/records"): Rule("engineer"),
    # jobs
    ("POST", "/tables/{name}/jobs/{kind}"): Rule("engineer", redact=True, job_params=True),
    ("GET", "/jobs"): Rule("reader", redact=True),
    ("GET", "/jobs/{job_id}"): Rule("reader", redact=True),
    # lineage
    ("GET", "/lineage"): Rule("reader"),
    ("POST", "/lineage"): Rule("engineer"),
    ("GET", "/lineage/events"): Rule("reader", redact=True),
    # admin
    ("POST", "/keys"): Rule("admin"),
    ("GET", "/keys"): Rule("admin"),
    ("DELETE", "/keys/{key_id}"): Rule("admin"),
    ("POST", "/erase"): Rule("admin"),
    ("GET", "/audit"): Rule("admin"),
    # the console (api/console): its pages hold no data (every number comes with the key from the routes here);
    # its table page shows job parameters and the predicates queries ran, redacted below admin
    ("GET", "/"): Rule(PUBLIC),
    ("GET", "/favicon.ico"): Rule(PUBLIC),
    ("GET", "/ui/"): Rule(PUBLIC),
    ("GET", "/ui/{asset}"): Rule(PUBLIC),
    ("GET", "/console/whoami"): Rule("reader"),
    ("GET", "/console/tables"): Rule("reader"),
    ("GET", "/console/tables/{name}"): Rule("reader", redact=True),
    ("POST", "/console/measure"): Rule("engineer"),
    # the Iceberg REST catalog (api/iceberg_rest.py). Loading a table hands its files over, so one with PII
    # needs READS_PII besides the route's role (lakehouse/served/iceberg_rest.py checks it per table). Commits,
    # creates and registers are an engineer's, like ingest and optimize; dropping and renaming tables (the drop
    # may purge the files) and namespaces are admin's, as is PII. The token exchange takes the key in its body.
    ("POST", "/iceberg/v1/oauth/tokens"): Rule(PUBLIC),
    ("GET", "/iceberg/v1/config"): Rule("reader"),
    ("GET", "/iceberg/v1/namespaces"): Rule("reader"),
    ("POST", "/iceberg/v1/namespaces"): Rule("engineer"),
    ("GET", "/iceberg/v1/namespaces/{namespace}"): Rule("reader"),
    ("HEAD", "/iceberg/v1/namespaces/{namespace}"): Rule("reader"),
    ("DELETE", "/iceberg/v1/namespaces/{namespace}"): Rule("admin"),
    ("POST", "/iceberg/v1/namespaces/{namespace}/properties"): Rule("engineer"),
    ("GET", "/iceberg/v1/namespaces/{namespace}/tables"): Rule("reader"),
    ("POST", "/iceberg/v1/namespaces/{namespace}/tables"): Rule("engineer"),
    ("POST", "/iceberg/v1/namespaces/{namespace}/register"): Rule("engineer"),
    ("GET", "/iceberg/v1/namespaces/{namespace}/tables/{table}"): Rule("reader"),
    ("HEAD", "/iceberg/v1/namespaces/{namespace}/tables/{table}"): Rule("reader"),
    ("POST", "/iceberg/v1/namespaces/{namespace}/tables/{table}"): Rule("engineer"),
    ("DELETE", "/iceberg/v1/namespaces/{namespace}/tables/{table}"): Rule("admin"),
    ("POST", "/iceberg/v1/namespaces/{namespace}/tables/{table}/metrics"): Rule("reader"),
    ("POST", "/iceberg/v1/tables/rename"): Rule("admin"),
    # the Unity Catalog API subset (api/unity.py): read-only; tables with PII are listed and described only for
    # READS_PII (lakehouse/served/unity.py checks it per table)
    ("GET", "/api/2.1/unity-catalog/catalogs"): Rule("reader"),
    ("GET", "/api/2.1/unity-catalog/catalogs/{name}"): Rule("reader"),
    ("GET", "/api/2.1/unity-catalog/schemas"): Rule("reader"),
    ("GET", "/api/2.1/unity-catalog/schemas/{full_name}"): Rule("reader"),
    ("GET", "/api/2.1/unity-catalog/tables"): Rule("reader"),
    ("GET", "/api/2.1/unity-catalog/tables/{full_name}"): Rule("reader"),
    ("POST", "/api/2.1/unity-catalog/temporary-table-credentials"): Rule("reader"),
}

JOBS: Final[Mapping[str, JobRule]] = {
    "optimize": JobRule("engineer", "engineer", "rewrites files, same rows; a restore undoes it"),
    "vacuum": JobRule("engineer", "engineer", "expires versions by the stored retention"),
    "orphans": JobRule("engineer", "engineer", "deletes unreferenced files older than the stored age"),
    "expire-data": JobRule("engineer", "engineer", "deletes rows by the stored retention"),
    "tier": JobRule("engineer", "engineer", "moves files between storage tiers"),
    "dedup": JobRule("engineer", "engineer", "removes duplicate rows; a restore undoes it"),
    "pii-scan": JobRule("engineer", "admin", "apply replaces the PII tags, which decide what readers see masked"),
    "pii-mask": JobRule("engineer", "engineer", "without masks: re-applies the stored masking, only masks more"),
}

JOB_PARAMS: Final[Mapping[str, JobRule]] = {
    "masks": JobRule("admin", "admin", "replaces the stored masking policy of its columns, so can lower it"),
    "purge": JobRule("admin", "admin", "destroys every old version of the table"),
    "retain": JobRule("engineer", "admin", "overrides the stored retention; vacuum cannot be undone"),
    "older_than": JobRule("engineer", "admin", "overrides the stored orphan age or data expiry"),
    "column": JobRule("engineer", "admin", "overrides the stored data expiry's time column"),
}
"""A parameter counts as given unless it is absent, null or false."""


def highest(roles: Iterable[str]) -> str:
    return max(roles, key=ORDER.index, default=PUBLIC)


def job_requirements(kind: str, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(role, reason) for a job request: the route's, the kind's, and each given parameter's. An unknown kind
    needs admin (the table is checked against the app's kinds at startup, so this is a fallback)."""
    dry_run = params.get("dry_run", True) is True  # anything else may run: judged as an apply
    mode = "dry run" if dry_run else "apply"
    base = ROUTES[("POST", "/tables/{name}/jobs/{kind}")].role
    needs = [(base, "jobs")]
    rule = JOBS.get(kind)
    needs.append((rule.role(dry_run), f"{kind} ({mode}): {rule.why}") if rule else ("admin", f"unknown job {kind}"))
    for param, p_rule in JOB_PARAMS.items():
        if params.get(param) not in (None, False):
            needs.append((p_rule.role(dry_run), f"{param} ({mode}): {p_rule.why}"))
    return needs


def job_role(kind: str, params: Mapping[str, Any]) -> str:
    return highest(role for role, _ in job_requirements(kind, params))


def require_job(p: Principal, kind: str, params: Mapping[str, Any]) -> None:
    """Refuse (403) a job request that needs more than the key's role, naming why."""
    missing = [(role, why) for role, why in job_requirements(kind, params) if not allows(p, role)]
    if missing:
        role = highest(r for r, _ in missing)
        reasons = "; ".join(why for r, why in missing if r == role)
        raise ForbiddenError(f"this job needs the {role} role ({reasons}); key {p.key_id} is {p.role}")


def allows(p: Principal | None, role: str) -> bool:
    return role == PUBLIC or (p is not None and p.allows(role))


# ---- the dependency and the route class ------------------------------------------------------------------


def rule_for(method: str, path: str) -> Rule | None:
    return ROUTES.get((method.upper(), path))


def authorize(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Principal:
    """The key of the request, allowed by the table's rule for the route that matched (401 without a valid key,
    403 below the role). A route with no rule is refused."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    rule = rule_for(request.method, path) if isinstance(path, str) else None
    if rule is None:
        raise ForbiddenError(f"no authorization rule for {request.method} {path}")
    token = x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    p = authenticate(request.app.state.lakehouse, token)
    if rule.role != PUBLIC:
        p.require(rule.role)
    request.state.principal = p
    return p


def _route_methods(route: BaseRoute) -> set[str]:
    methods = set(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.discard("HEAD")  # Starlette adds HEAD to every GET route; it is the same route
    return methods


class AuthorizedRoute(APIRoute):
    """An API route that takes its role from ``ROUTES``: ``authorize`` as its first dependency (none for a
    public route), and predicates redacted from its answer for callers below admin where the rule says so.
    A route without an entry also gets ``authorize``, which refuses every call (and :func:`check_app` refuses
    the app)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        methods = {m.upper() for m in (kwargs.get("methods") or {"GET"})}
        self.rules = {m: rule_for(m, path) for m in (methods - {"HEAD"} if "GET" in methods else methods)}
        dependencies = list(kwargs.pop("dependencies", None) or ())
        if any(r is None or r.role != PUBLIC for r in self.rules.values()):
            dependencies.insert(0, Depends(authorize))
        super().__init__(path, endpoint, dependencies=dependencies, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if not any(r is not None and r.redact for r in self.rules.values()):
            return handler

        async def redacting(request: Request) -> Response:
            response = await handler(request)
            rule = self.rules.get(request.method.upper())
            if rule is None or not rule.redact or allows(getattr(request.state, "principal", None), READS_PII):
                return response
            if not (response.media_type or "").startswith("application/json"):
                return response
            body = orjson.loads(bytes(response.body))
            redacted = redact_predicates(body)
            if redacted == body:
                return response
            return JSONResponse(redacted, status_code=response.status_code)

        return redacting


def check_app(app: FastAPI, *, job_kinds: Iterable[str], job_dependency: Callable[..., Any]) -> None:
    """Raise :class:`ConfigError` unless the app's routes and ``ROUTES`` are the same set, every route that needs
    a key was built by :class:`AuthorizedRoute`, job routes check their parameters with ``job_dependency``, and
    ``JOBS`` names exactly the app's job kinds."""
    seen: set[tuple[str, str]] = set()
    problems: list[str] = []
    for route in app.routes:
        path = getattr(route, "path", "")
        methods = _route_methods(route)
        keys = {(m, path) for m in methods}
        seen |= keys
        rules = {k: ROUTES.get(k) for k in keys}
        for (method, _), rule in rules.items():
            if rule is None:
                problems.append(f"{method} {path} has no entry")
            elif rule.role != PUBLIC and not (isinstance(route, AuthorizedRoute) and _depends_on(route, authorize)):
                problems.append(f"{method} {path} needs {rule.role} but is not an AuthorizedRoute")
            elif rule.job_params and isinstance(route, APIRoute) and not _depends_on(route, job_dependency):
                problems.append(f"{method} {path} takes job parameters without checking them")
        if not isinstance(route, Route):  # a Mount or a websocket route: nothing to attach a rule to
            problems.append(f"{path}: a {type(route).__name__} cannot be authorized per route")
    problems += [f"{m} {p} is in ROUTES but the app has no such route" for m, p in sorted(set(ROUTES) - seen)]
    kinds = set(job_kinds)
    if kinds != set(JOBS):
        problems.append(f"JOBS names {sorted(JOBS)}, the app's job kinds are {sorted(kinds)}")
    if problems:
        raise ConfigError("api.authz.ROUTES does not match the app: " + "; ".join(problems))


def _depends_on(route: APIRoute, call: Callable[..., Any]) -> bool:
    stack = [route.dependant]
    while stack:
        d = stack.pop()
        if d.call is call:
            return True
        stack.extend(d.dependencies)
    return False


# ---- redaction ------------------------------------------------------------------------------------------------


def names_predicate(key: str) -> bool:
    """A key whose value is (or holds) a predicate: Delta's ``predicate`` (DELETE, UPDATE, WRITE with
    replaceWhere, OPTIMIZE), ``mergePredicate``, ``matchedPredicates``, ``notMatchedPredicates``, ...; Spark
    plan ``condition``; an erasure's ``where``; ``predicate_digest`` (a plain SHA-256 of a guessable predicate
    when no secret is set).

    >>> [k for k in ("predicate", "matchedPredicates", "where", "condition", "rows", "mode") if names_predicate(k)]
    ['predicate', 'matchedPredicates', 'where', 'condition']
    """
    k = key.lower()
    return k == "where" or "predicate" in k or "condition" in k


def redact_predicates(value: Any) -> Any:
    """``value`` with every non-empty value under a predicate key replaced by ``[REDACTED]``, at any depth.
    A string elsewhere that mentions "predicate" is looked into when it is JSON (summaries keep nested values as
    JSON text, e.g. a commit's ``operationParameters``) and replaced whole when it is not (a Python repr).

    >>> redact_predicates({"operation": "delete", "predicate": "email = 'a@b.c'", "num_removed_files": "1"})
    {'operation': 'delete', 'predicate': '[REDACTED]', 'num_removed_files': '1'}
    >>> redact_predicates({"operationParameters": '{"predicate": "id = 1", "mode": "x"}'})
    {'operationParameters': '{"predicate":"[REDACTED]","mode":"x"}'}
    >>> redact_predicates({"engineInfo": "{'predicate': 'id = 1'}", "predicate": None})
    {'engineInfo': '[REDACTED]', 'predicate': None}
    """
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and names_predicate(k) and _nonempty(v) else redact_predicates(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_predicates(v) for v in value]
    if isinstance(value, str) and "predicate" in value.lower():
        if value.lstrip()[:1] in ("{", "["):
            try:
                parsed = json.loads(value)
            except ValueError:
                return REDACTED
            return json.dumps(redact_predicates(parsed), separators=(",", ":"))
        return REDACTED
    return value


def masked_partition_keys(lh: Any, table: Any) -> set[str]:
    """The columns a caller below admin reads masked (masking policies and PII tags) and the partition fields
    made from them: their partition values are PII too (``email=alice%40corp.com/``)."""
    from lakehouse.governance.ops import read_masks

    masked = set(read_masks(lh, table))
    return masked | {f.name for f in table.definition.partitioning if f.column in masked}


PARTITION_SUMMARY = "partitions."
"""The prefix of an Iceberg snapshot summary's per-partition keys (``partitions.<partition path>``)."""


def redact_partitions(value: Any, keys: Collection[str] | None) -> Any:
    """``value`` with the partition values of ``keys`` redacted at any depth: entries of a mapping under a
    ``partition`` key, and ``key=value`` segments of paths. ``keys`` None: every partition value (a table that
    cannot be opened any more, whose masks are unknown).

    >>> job = {"partitions": [{"partition": {"email": "a@b.c", "day": "2026-01-01"}, "files": 2}]}
    >>> redact_partitions(job, {"email"})
    {'partitions': [{'partition': {'email': '[REDACTED]', 'day': '2026-01-01'}, 'files': 2}]}
    >>> redact_partitions({"path": "/wh/t/email=a%40b.c/day=1/p.parquet", "n": 1}, {"email"})
    {'path': '/wh/t/email=[REDACTED]/day=1/p.parquet', 'n': 1}
    >>> redact_partitions({"partition": {"day": 1}}, None)
    {'partition': {'day': '[REDACTED]'}}

    Iceberg snapshot summaries written under ``write.summary.partition-limit`` (Spark, Flink, pyiceberg) carry a
    partition's path in a key, ``partitions.<path>``:

    >>> redact_partitions({"summary": {"partitions.email=a%40b.c": "added-records=1"}}, {"email"})
    {'summary': {'partitions.email=[REDACTED]': 'added-records=1'}}
    """
    import urllib.parse

    def hidden(key: str) -> bool:
        return keys is None or key in keys

    def path(v: str) -> str:
        parts = v.split("/")
        for i, part in enumerate(parts):
            key, eq, _ = part.partition("=")
            if eq and key and hidden(urllib.parse.unquote(key)):
                parts[i] = f"{key}={REDACTED}"
        return "/".join(parts)

    def summary_key(k: Any) -> Any:
        if isinstance(k, str) and k.startswith(PARTITION_SUMMARY) and "=" in k:
            return PARTITION_SUMMARY + path(k[len(PARTITION_SUMMARY) :])
        return k

    def walk(v: Any, under: str | None) -> Any:
        if isinstance(v, dict):
            if under == "partition":
                return {k: (REDACTED if isinstance(k, str) and hidden(k) else walk(x, None)) for k, x in v.items()}
            return {summary_key(k): walk(x, k if isinstance(k, str) else None) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [walk(x, under) for x in v]
        if isinstance(v, str) and "=" in v and "/" in v:
            return path(v)
        return v

    return walk(value, None)


def _nonempty(v: Any) -> bool:
    return v not in (None, "", [], {})


# ---- the table as Markdown (README "Roles") ---------------------------------------------------------------


def roles_markdown() -> str:
    """The README's role tables, rendered from ``ROUTES``, ``JOBS`` and ``JOB_PARAMS``."""
    lines = ["| least role | routes |", "|---|---|"]
    for role in ORDER:
        routes = [
            f"`{method} {path}`" + (" (some jobs and parameters need more: below)" if rule.job_params else "")
            for (method, path), rule in ROUTES.items()
            if rule.role == role
        ]
        lines.append(f"| {'none (no key)' if role == PUBLIC else role} | {', '.join(routes)} |")
    lines += ["", "| job, or parameter given | dry run | apply | why |", "|---|---|---|---|"]
    lines += [f"| `{kind}` | {r.dry_run} | {r.apply} | {r.why} |" for kind, r in JOBS.items()]
    lines += [f"| `{param}` | {r.dry_run} | {r.apply} | {r.why} |" for param, r in JOB_PARAMS.items()]
    return "\n".join(lines) + "\n"
