"""What the build host provides: the tools the builder shells out to and its Debian mirror."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImageBuildError

# tool -> Debian package that ships it
_TOOLS = {
    "debootstrap": "debootstrap",
    "mke2fs": "e2fsprogs",
    "qemu-img": "qemu-utils",
    "chroot": "coreutils",
    "unshare": "util-linux",
    "setpriv": "util-linux",
}
_SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"])

DEB822_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
ONE_LINE_SOURCES = Path("/etc/apt/sources.list")


@dataclass(frozen=True)
class Tools:
    debootstrap: str
    mke2fs: str
    qemu_img: str
    chroot: str
    unshare: str
    setpriv: str


def find_tools() -> Tools:
    """Absolute paths of the external tools; ``ImageBuildError`` naming the package to install."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for tool, package in _TOOLS.items():
        path = shutil.which(tool, path=_SEARCH_PATH)
        if path:
            found[tool.replace("-", "_")] = path
        else:
            missing.append(f"{tool} (package {package})")
    if missing:
        packages = sorted({_TOOLS[m.split()[0]] for m in missing})
        raise ImageBuildError(f"cannot build images: {', '.join(missing)} not found",
                              hint=f"install it with: apt-get install {' '.join(packages)}")
    return Tools(**found)


def default_mirror(deb822: Path = DEB822_SOURCES, one_line: Path = ONE_LINE_SOURCES) -> str:
    """The host's own Debian mirror: first ``URIs:`` of the deb822 file, else first ``deb`` line."""
    uri = _first_deb822_uri(deb822) or _first_one_line_uri(one_line)
    if not uri:
        raise ImageBuildError(
            f"no Debian mirror found in {deb822} or {one_line}",
            hint="set 'mirror:' in the image recipe, e.g. the URL your apt uses")
    if not re.match(r"^(https?|file)://", uri):
        raise ImageBuildError(f"the host's Debian mirror '{uri}' cannot be used by debootstrap",
                              hint="set 'mirror:' in the image recipe to an http:// or https:// URL")
    return uri.rstrip("/")


def _first_deb822_uri(path: Path) -> str | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "deb").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if fields.get("uris"):
            return fields["uris"].split()[0]
    return None


def _first_one_line_uri(path: Path) -> str | None:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # options: [arch=amd64 signed-by=...]
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if words:
            return words[0]
    return None
