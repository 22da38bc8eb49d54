"""Container image references in workload configs, and which the operator
allows (NOTEBOOKS_ALLOWED_IMAGES).

An org admin is a customer: without an allow-list their config may name any
image, and on Kubernetes the platform's pull secrets go with it
(NOTEBOOKS_K8S_IMAGE_PULL_SECRETS), so a tenant could pull whatever those
credentials reach. The list holds repositories ("registry.example.com/sail":
any tag or digest of it) and repository prefixes ending in "/"
("registry.example.com/notebooks/"), compared as written (no registry
defaulting: "lakehq/sail" and "docker.io/lakehq/sail" are two entries)."""

from __future__ import annotations

import re

# The distribution reference grammar (registry[:port]/path[:tag][@digest]),
# as docker and containerd parse it.
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = rf"(?:{_DOMAIN}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_PATTERN = rf"^{_REPOSITORY}(?::{_TAG})?(?:@{_DIGEST})?$"

_ENTRY = re.compile(rf"^{_REPOSITORY}/?$")


def parse_allowlist(raw: str) -> tuple[str, ...]:
    """NOTEBOOKS_ALLOWED_IMAGES: comma-separated; empty allows every image.
    A ValueError names an entry that is neither a repository nor a prefix."""
    entries = tuple(entry.strip() for entry in raw.split(",") if entry.strip())
    for entry in entries:
        if not _ENTRY.fullmatch(entry):
            raise ValueError(
                f"{entry!r} is not an image repository (no tag or digest) or a prefix ending in /"
            )
    return entries


def image_allowed(image: str, allowlist: tuple[str, ...]) -> bool:
    if not allowlist:
        return True
    repository = _repository(image)
    return any(
        repository.startswith(entry) if entry.endswith("/") else repository == entry
        for entry in allowlist
    )


def _repository(image: str) -> str:
    """The image without its tag and digest (a registry's port is kept)."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name
