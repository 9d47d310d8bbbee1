"""Edits to the routing document, as pure functions: document in, new document out.

Each edit either returns a new, fully validated ``RoutingDocument`` or raises ``EditError``
naming the field (in the API's own terms, e.g. ``weights.canary``) and the reason. Nothing
here touches Redis; the API reads, edits, and writes with compare-and-set.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from config.flag_schedule import ScheduleStep
from config.flags import Flag, Segment
from config.loader import reason
from config.schema import Route, RoutingDocument, Track, weight_to_basis_points


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str


class EditError(Exception):
    """The edit is refused; ``status`` is the HTTP status that says why (404, 409 or 422)."""

    def __init__(self, errors: list[FieldError], status: int = 422) -> None:
        super().__init__("; ".join(f"{e.field}: {e.reason}" for e in errors))
        self.errors = errors
        self.status = status


def find_route(document: RoutingDocument, name: str) -> Route:
    route = document.route(name)
    if route is None:
        raise EditError([FieldError("route", f"no route named {name!r}")], status=404)
    return route


def find_track(route: Route, name: str) -> Track:
    for track in route.tracks:
        if track.name == name:
            return track
    raise EditError(
        [FieldError("track", f"route {route.name!r} has no track {name!r}")], status=404
    )


def set_weights(document: RoutingDocument, route_name: str, weights: Any) -> RoutingDocument:
    """New weights for some or all tracks; tracks not named keep theirs. The sum must be 100."""
    route = find_route(document, route_name)
    if not isinstance(weights, Mapping) or not weights:
        raise EditError(
            [FieldError("weights", 'an object of track name → percentage, e.g. {"stable": 90}')]
        )
    names = {t.name for t in route.tracks}
    errors = []
    for name, value in weights.items():
        field = f"weights.{name}"
        if name not in names:
            errors.append(FieldError(field, f"route {route.name!r} has no track {name!r}"))
        elif (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            errors.append(FieldError(field, "must be a number"))
        elif value < 0 or value > 100:
            errors.append(FieldError(field, "a weight is a percentage between 0 and 100"))
        elif abs(value * 100 - round(value * 100)) > 1e-6:
            errors.append(FieldError(field, "a weight has at most two decimals (0.01 % steps)"))
    if errors:
        raise EditError(errors)
    tracks = [
        t.model_copy(update={"weight": float(weights.get(t.name, t.weight))}) for t in route.tracks
    ]
    total = sum(weight_to_basis_points(t.weight) for t in tracks)
    if total != 10_000:
        shown = ", ".join(f"{t.name}={t.weight:g}" for t in tracks)
        raise EditError(
            [FieldError("weights", f"weights must add up to 100 (got {total / 100:g}: {shown})")]
        )
    return _with_route(document, route, {"tracks": [t.model_dump() for t in tracks]})


def set_shadow(document: RoutingDocument, route_name: str, shadow: Any) -> RoutingDocument:
    """Mirror the route's requests as ``shadow`` says (``config.shadow.Shadow``), or stop
    mirroring (None). Its track must be one of the route's, not the baseline."""
    route = find_route(document, route_name)
    if shadow is not None and not isinstance(shadow, Mapping):
        raise EditError([FieldError("shadow", "an object with track and percent, or null")])
    return _with_route(document, route, {"shadow": None if shadow is None else dict(shadow)})


def put_track(
    document: RoutingDocument, route_name: str, track_name: str, body: Any
) -> RoutingDocument:
    """Add a track, or replace the one of that name. The route's weights must still add to 100."""
    route = find_route(document, route_name)
    if not isinstance(body, Mapping):
        raise EditError([FieldError("track", "a JSON object with version, upstreams and weight")])
    if body.get("name", track_name) != track_name:
        raise EditError(
            [
                FieldError(
                    "track.name", f"the body names {body.get('name')!r}, the path {track_name!r}"
                )
            ]
        )
    try:
        track = Track.model_validate({**body, "name": track_name})
    except ValidationError as exc:
        raise EditError(_field_errors(exc, "track")) from None
    tracks = [t.model_dump() for t in route.tracks if t.name != track_name]
    replaced = len(tracks) < len(route.tracks)
    position = next((i for i, t in enumerate(route.tracks) if t.name == track_name), len(tracks))
    tracks.insert(position if replaced else len(tracks), track.model_dump())
    return _with_route(document, route, {"tracks": tracks})


def delete_track(document: RoutingDocument, route_name: str, track_name: str) -> RoutingDocument:
    route = find_route(document, route_name)
    find_track(route, track_name)
    tracks = [t.model_dump() for t in route.tracks if t.name != track_name]
    if not tracks:
        raise EditError([FieldError("track", "a route keeps at least one track")], status=409)
    return _with_route(document, route, {"tracks": tracks})


def add_upstream(
    document: RoutingDocument, route_name: str, track_name: str, url: Any
) -> RoutingDocument:
    route = find_route(document, route_name)
    track = find_track(route, track_name)
    if not isinstance(url, str):
        raise EditError([FieldError("url", "an http:// or https:// URL string")])
    return _with_track(document, route, track, [*track.upstreams, url])


def remove_upstream(
    document: RoutingDocument, route_name: str, track_name: str, url: Any
) -> RoutingDocument:
    route = find_route(document, route_name)
    track = find_track(route, track_name)
    wanted = url.rstrip("/") if isinstance(url, str) else url
    if wanted not in track.upstreams:
        raise EditError(
            [FieldError("url", f"track {track_name!r} has no upstream {url!r}")], status=404
        )
    return _with_track(document, route, track, [u for u in track.upstreams if u != wanted])


def _with_track(
    document: RoutingDocument, route: Route, track: Track, upstreams: list[str]
) -> RoutingDocument:
    try:
        Track.model_validate({**track.model_dump(), "upstreams": upstreams})
    except ValidationError as exc:
        raise EditError(_field_errors(exc, "track")) from None
    tracks = [
        {**t.model_dump(), "upstreams": upstreams} if t is track else t.model_dump()
        for t in route.tracks
    ]
    return _with_route(document, route, {"tracks": tracks})


def _with_route(document: RoutingDocument, route: Route, update: dict[str, Any]) -> RoutingDocument:
    routes = [
        {**r.model_dump(), **update} if r is route else r.model_dump() for r in document.routes
    ]
    try:
        return RoutingDocument.model_validate({**_fields(document), "routes": routes})
    except ValidationError as exc:
        index = document.routes.index(route)
        raise EditError(_field_errors(exc, "", strip=("routes", index))) from None


def _fields(document: RoutingDocument) -> dict[str, Any]:
    """The routing document's own fields (a stored document has more), as plain data."""
    return document.model_dump(include=set(RoutingDocument.model_fields))


def find_flag(document: RoutingDocument, name: str) -> Flag:
    flag = document.feature_flags.get(name)
    if flag is None:
        raise EditError([FieldError("flag", f"no feature flag named {name!r}")], status=404)
    return flag


def put_flag(document: RoutingDocument, name: str, body: Any) -> RoutingDocument:
    """Add a flag (evaluated after the existing ones), or replace the one of that name in
    place. Its route, track and segments must exist."""
    if not isinstance(body, Mapping):
        raise EditError([FieldError("flag", "a JSON object with route, track and an audience")])
    try:
        flag = Flag.model_validate(body)
    except ValidationError as exc:
        raise EditError(_field_errors(exc, "flag")) from None
    flags = {n: f.model_dump() for n, f in document.feature_flags.items()}
    flags[name] = flag.model_dump()
    return _with_flags(document, flags, name)


def patch_flag(document: RoutingDocument, name: str, changes: Any) -> RoutingDocument:
    """Change some top-level fields of a flag (``enabled``, ``rollout_percentage`` …)."""
    flag = find_flag(document, name)
    if not isinstance(changes, Mapping) or not changes:
        raise EditError(
            [FieldError("flag", 'an object of the fields to change, e.g. {"enabled": false}')]
        )
    return put_flag(document, name, {**flag.model_dump(), **changes})


def delete_flag(document: RoutingDocument, name: str) -> RoutingDocument:
    """Remove a flag: the users it released go back to the route's weighted split."""
    find_flag(document, name)
    flags = {n: f.model_dump() for n, f in document.feature_flags.items() if n != name}
    return _with_flags(document, flags, name)


def put_segment(document: RoutingDocument, name: str, body: Any) -> RoutingDocument:
    if not isinstance(body, Mapping):
        raise EditError([FieldError("segment", 'a JSON object: {"conditions": [...]}')])
    try:
        segment = Segment.model_validate(body)
    except ValidationError as exc:
        raise EditError(_field_errors(exc, "segment")) from None
    data = _fields(document)
    data["segments"] = {**data.get("segments", {}), name: segment.model_dump()}
    return _validated(data, ("segments", name), "segment")


def delete_segment(document: RoutingDocument, name: str) -> RoutingDocument:
    if name not in document.segments:
        raise EditError([FieldError("segment", f"no segment named {name!r}")], status=404)
    users = [
        flag_name
        for flag_name, flag in document.feature_flags.items()
        if name in flag.target_groups
        or any(
            s.target == name
            for s in (flag.gradual_rollout.schedule if flag.gradual_rollout else [])
        )
    ]
    if users:
        raise EditError(
            [
                FieldError(
                    "segment", f"segment {name!r} is used by flag {', '.join(map(repr, users))}"
                )
            ],
            status=409,
        )
    data = _fields(document)
    del data["segments"][name]
    return _validated(data, ("segments", name), "segment")


def set_attributes(document: RoutingDocument, attributes: Any) -> RoutingDocument:
    """Replace the map of attribute name → request header."""
    if not isinstance(attributes, Mapping):
        raise EditError(
            [
                FieldError(
                    "attributes", 'an object of attribute → header, e.g. {"region": "x-region"}'
                )
            ]
        )
    return _validated(
        {**_fields(document), "attributes": dict(attributes)}, ("attributes",), "attributes"
    )


def apply_schedule_step(
    document: RoutingDocument, name: str, step: ScheduleStep
) -> RoutingDocument:
    """The document after one step of the flag's schedule.

    A step sets ``rollout_percentage``; with a ``target`` the audience becomes that segment
    alone (``all_users``: everyone), the flag's own conditions dropped. ``remove_flag`` (at
    100 % of all_users, by validation) gives the released track 100 % of the route's weights
    and deletes the flag in the same document, so nobody the flag released moves. It is
    refused while the flag is off or excludes users (``disabled_for``): those users are not
    on the released track and would be moved onto it.
    """
    flag = find_flag(document, name)
    if step.action != "remove_flag":
        changes: dict[str, Any] = {"rollout_percentage": step.percentage}
        if step.target is not None:
            changes |= {"target_groups": [step.target], "conditions": []}
        return put_flag(document, name, {**flag.model_dump(), **changes})
    if not flag.enabled or flag.override.disabled_for:
        why = "is disabled" if not flag.enabled else "excludes users in override.disabled_for"
        raise EditError(
            [
                FieldError(
                    "flag", f"flag {name!r} {why}: removing it would move them to {flag.track!r}"
                )
            ],
            status=409,
        )
    route = find_route(document, flag.route)
    weights = {t.name: 100.0 if t.name == flag.track else 0.0 for t in route.tracks}
    return delete_flag(set_weights(document, route.name, weights), name)


def _with_flags(document: RoutingDocument, flags: dict[str, Any], name: str) -> RoutingDocument:
    return _validated(
        {**_fields(document), "feature_flags": flags}, ("feature_flags", name), "flag"
    )


def _validated(data: dict[str, Any], strip: tuple[Any, ...], prefix: str) -> RoutingDocument:
    """Validate a whole document; errors under ``strip`` are named from ``prefix``."""
    try:
        return RoutingDocument.model_validate(data)
    except ValidationError as exc:
        errors = []
        for error in _field_errors(exc, ""):
            dotted = ".".join(str(p) for p in strip)
            if error.field == dotted or error.field.startswith((dotted + ".", dotted + "[")):
                error = FieldError(prefix + error.field[len(dotted) :], error.reason)
            errors.append(error)
        raise EditError(errors) from None


def _field_errors(
    exc: ValidationError, prefix: str, strip: tuple[Any, ...] = ()
) -> list[FieldError]:
    errors = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        if strip and loc[: len(strip)] == strip:
            loc = loc[len(strip) :]
        field = prefix
        for part in loc:
            field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
        errors.append(FieldError(field or "document", reason(error)))
    return errors
