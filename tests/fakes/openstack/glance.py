"""Fake Glance v2: version discovery, the image schemas glanceclient builds its model from,
and the stock Chameleon images (``CC-Ubuntu22.04``, ``CC-Ubuntu24.04``), read-only, with
the ``name``/``status``/``visibility`` filters and marker/limit paging.

Image ids, sizes and checksums are invented; Chameleon's real images carry more custom
properties than the two kept here.
"""

from __future__ import annotations

import hashlib

from .base import ApiError, Ctx, Reply, Router, paginate
from .state import World, public

IMAGES = (
    ("3c3a6d2b-5f0e-4a7e-9a61-1b2c3d4e5f60", "CC-Ubuntu22.04", "jammy"),
    ("9d8e7f6a-5b4c-4d3e-8f2a-0b1c2d3e4f50", "CC-Ubuntu24.04", "noble"),
)
DEFAULT_LIMIT = 25
_NULLABLE_STR = {"type": ["null", "string"]}


def render_error(err: ApiError) -> Reply:
    """Glance answers errors in plain text (webob's default page)."""
    titles = {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        409: "Conflict",
    }
    title = titles.get(err.status, "Error")
    return Reply(err.status, f"{err.status} {title}\n\n{err.message}\n\n   ", err.headers)


router = Router("image", render_error)


def seed(world: World) -> None:
    """The two stock public images."""
    for iid, name, codename in IMAGES:
        digest = hashlib.sha512(name.encode()).hexdigest()
        world.add(
            "images",
            {
                "id": iid,
                "name": name,
                "status": "active",
                "visibility": "public",
                "protected": False,
                "os_hidden": False,
                "owner": "admin-project-0000000000000000",
                "checksum": hashlib.md5(name.encode()).hexdigest(),
                "os_hash_algo": "sha512",
                "os_hash_value": digest,
                "size": 4_621_008_896,
                "virtual_size": None,
                "min_ram": 0,
                "min_disk": 0,
                "container_format": "bare",
                "disk_format": "qcow2",
                "created_at": "2026-10-01T00:00:00Z",
                "updated_at": "2026-10-01T00:00:00Z",
                "tags": [],
                "build-distro": "ubuntu",
                "build-release": codename,
                "self": f"/v2/images/{iid}",
                "file": f"/v2/images/{iid}/file",
                "schema": "/v2/schemas/image",
                "_seed": True,
            },
        )


def _versions(ctx: Ctx) -> dict:
    out = []
    for vid, status in (("v2.9", "CURRENT"), ("v2.7", "SUPPORTED"), ("v2.0", "SUPPORTED")):
        out.append(
            {
                "id": vid,
                "status": status,
                "links": [{"rel": "self", "href": ctx.service_url + "/v2/"}],
            }
        )
    return {"versions": out}


@router.route("GET", "/", auth=False)
def versions(ctx: Ctx) -> Reply:
    """300 Multiple Choices with the v2 versions, as Glance answers its root."""
    return Reply(300, _versions(ctx))


@router.route("GET", "/versions", auth=False)
def versions_list(ctx: Ctx) -> Reply:
    """The same list at /versions (200)."""
    return Reply(200, _versions(ctx))


def image_schema() -> dict:
    """A trimmed copy of Glance's ``image`` schema: every field the fake sends, custom
    properties allowed as strings."""
    props = {
        "id": {"type": "string"},
        "name": _NULLABLE_STR,
        "status": {
            "type": "string",
            "enum": [
                "queued",
                "saving",
                "active",
                "killed",
                "deleted",
                "uploading",
                "importing",
                "pending_delete",
                "deactivated",
            ],
        },
        "visibility": {"type": "string", "enum": ["community", "public", "private", "shared"]},
        "protected": {"type": "boolean"},
        "os_hidden": {"type": "boolean"},
        "checksum": _NULLABLE_STR,
        "os_hash_algo": _NULLABLE_STR,
        "os_hash_value": _NULLABLE_STR,
        "owner": _NULLABLE_STR,
        "size": {"type": ["null", "integer"]},
        "virtual_size": {"type": ["null", "integer"]},
        "min_ram": {"type": "integer"},
        "min_disk": {"type": "integer"},
        "container_format": _NULLABLE_STR,
        "disk_format": _NULLABLE_STR,
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 255}},
        "direct_url": {"type": "string"},
        "locations": {"type": "array"},
        "self": {"type": "string"},
        "file": {"type": "string"},
        "schema": {"type": "string"},
    }
    return {
        "name": "image",
        "properties": props,
        "additionalProperties": {"type": "string"},
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }


@router.route("GET", "/v2/schemas/image")
def schema_image(ctx: Ctx) -> Reply:
    """The image schema."""
    return Reply(200, image_schema())


@router.route("GET", "/v2/schemas/images")
def schema_images(ctx: Ctx) -> Reply:
    """The image-list schema."""
    return Reply(
        200,
        {
            "name": "images",
            "properties": {
                "images": {"type": "array", "items": image_schema()},
                "schema": {"type": "string"},
                "first": {"type": "string"},
                "next": {"type": "string"},
            },
            "links": [
                {"rel": "first", "href": "{first}"},
                {"rel": "next", "href": "{next}"},
                {"rel": "describedby", "href": "{schema}"},
            ],
        },
    )


@router.route("GET", "/v2/images")
def list_images(ctx: Ctx) -> Reply:
    """Images with ``name``/``status``/``visibility``/``owner`` filters and paging."""
    with ctx.world.lock:
        items = sorted(ctx.world.table("images").values(), key=lambda i: i["created_at"] + i["id"])
        for key in ("name", "status", "visibility", "owner"):
            if ctx.args.get(key):
                items = [i for i in items if i[key] == ctx.args[key]]
        limit = min(ctx.args.get("limit", DEFAULT_LIMIT, type=int), 1000)
        args = ctx.args.copy()
        args["limit"] = str(limit)
        page, more = paginate(items, args)
        body = {
            "images": [public(i) for i in page],
            "schema": "/v2/schemas/images",
            "first": "/v2/images",
        }
    if more:
        query = "&".join(f"{k}={v}" for k, v in ctx.args.items() if k not in ("marker", "limit"))
        body["next"] = (
            f"/v2/images?{query + '&' if query else ''}marker={page[-1]['id']}&limit={limit}"
        )
    return Reply(200, body)


@router.route("GET", "/v2/images/{image_id}")
def show_image(ctx: Ctx, image_id: str) -> Reply:
    """One image (no wrapper object, as Glance v2 does)."""
    with ctx.world.lock:
        image = ctx.world.table("images").get(image_id)
        if image is None:
            raise ApiError(404, f"No image found with ID {image_id}")
        return Reply(200, public(image))
