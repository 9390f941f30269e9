"""Image recipes: what goes into a guest image, validated, normalized and hashed.

A recipe is a small YAML file (see ``tests/images/base.yaml``). ``load_recipe``
turns it into a ``Recipe`` or raises ``RecipeError`` naming ``file:line: field``.
``recipe_hash`` is the cache key: equal recipes (up to the order of ``packages``
and ``services``) hash equal, and any change that alters the image changes it.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from pathlib import Path
from typing import Annotated, Any, Optional

from pydantic import AfterValidator, Field, PrivateAttr, field_validator

from .. import yamlfile
from ..errors import RecipeError, SpecError
from ..strict import Strict

# Bump when the builder changes what it puts into an image: every cached image
# then gets rebuilt on next use instead of silently missing the change.
BUILDER_VERSION = "1"

# Always installed, whatever the recipe says: init, kernel, the guest agent the
# labs talk to, networking and a console login.
BASE_PACKAGES: tuple[str, ...] = (
    "systemd-sysv",
    "udev",
    "dbus",
    "linux-image-amd64",
    "qemu-guest-agent",
    "iproute2",
)

# Always enabled with ``systemctl enable`` inside the tree.
BASE_SERVICES: tuple[str, ...] = ("serial-getty@ttyS0.service", "systemd-networkd.service")

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_SUITE = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$")
_UNIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@._:\\-]{0,250}$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_MODE = re.compile(r"^0?[0-7]{3,4}$")
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT])?(?:i?B)?\s*$", re.IGNORECASE)
_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_MIN_SIZE = 512 << 20
_FORBIDDEN_ROOTS = ("/proc", "/sys", "/dev", "/run")


def parse_size(text: str) -> int:
    """``"2G"`` -> bytes (binary units). Raises ``ValueError`` with a readable message."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a size; write e.g. 2G or 1536M")
    number, unit = match.groups()
    if not unit:
        raise ValueError(f"'{text}' has no unit; write e.g. {text.strip()}G or {text.strip()}M")
    return int(number) * _UNITS[unit.upper()]


def format_size(size: int) -> str:
    """Bytes -> the shortest exact form: ``2147483648`` -> ``"2G"``."""
    for unit in ("T", "G", "M", "K"):
        if size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    raise ValueError(f"{size} bytes is not a whole number of KiB")


def _package(value: str) -> str:
    if not _PACKAGE.match(value):
        raise ValueError(f"'{value}' is not a Debian package name")
    return value


def _unit(value: str) -> str:
    if not _UNIT.match(value):
        raise ValueError(f"'{value}' is not a systemd unit name")
    return value


def _command(value: str) -> str:
    if not value.strip():
        raise ValueError("the command is empty")
    return value


def _authorized_key(value: str) -> str:
    value = value.strip()
    if "\n" in value or len(value.split()) < 2:
        raise ValueError(f"'{value[:40]}' is not one authorized_keys line ('TYPE BASE64 [comment]')")
    return value


PackageName = Annotated[str, AfterValidator(_package)]
UnitName = Annotated[str, AfterValidator(_unit)]
Command = Annotated[str, AfterValidator(_command)]
AuthorizedKey = Annotated[str, AfterValidator(_authorized_key)]


class FileEntry(Strict):
    """A file written into the tree (after the builder's own files, so it may replace them)."""

    path: str
    content: str
    mode: str = "0644"

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"'{value}' must be an absolute path inside the guest, e.g. /etc/motd")
        if "\0" in value or "\n" in value:
            raise ValueError("the path contains a NUL or newline")
        if ".." in value.split("/"):
            raise ValueError(f"'{value}' must not contain '..'")
        normal = posixpath.normpath(value)
        if normal == "/" or value.endswith("/"):
            raise ValueError(f"'{value}' names a directory; give a file path")
        if any(normal == top or normal.startswith(top + "/") for top in _FORBIDDEN_ROOTS):
            raise ValueError(f"'{value}' is inside a runtime filesystem ({', '.join(_FORBIDDEN_ROOTS)}) "
                             "that is not part of the image")
        return normal

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError('quote the mode so it stays octal, e.g. mode: "0644"')
        if isinstance(value, str):
            if not _MODE.match(value.strip()):
                raise ValueError(f"'{value}' is not an octal file mode such as \"0644\"")
            return f"{int(value, 8):04o}"
        return value


class User(Strict):
    name: str
    password: Optional[str] = None
    ssh_authorized_keys: list[AuthorizedKey] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _USER.match(value):
            raise ValueError(f"'{value}' is not a valid user name (lower case letters, digits, '_', '-')")
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and (not value or "\n" in value or "\r" in value or "\0" in value):
            raise ValueError("the password must be non-empty and on one line")
        return value


class Network(Strict):
    dhcp: bool = True


class Recipe(Strict):
    """A validated image recipe. Build it with ``build_image``."""

    name: str
    suite: str = "bookworm"
    mirror: Optional[str] = None
    packages: list[PackageName] = Field(default_factory=list)
    size: str = "2G"
    hostname: str = "debian"
    files: list[FileEntry] = Field(default_factory=list)
    services: list[UnitName] = Field(default_factory=list)
    users: list[User] = Field(default_factory=list)
    network: Network = Field(default_factory=Network)
    commands: list[Command] = Field(default_factory=list)

    # Where the recipe came from, for file:line in errors found while building.
    _source: Optional[yamlfile.Source] = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"'{value}' is not a valid image name (lower case letters, digits, '.', '_', '-'; "
                             "at most 63 characters)")
        return value

    @field_validator("suite")
    @classmethod
    def _suite(cls, value: str) -> str:
        if not _SUITE.match(value):
            raise ValueError(f"'{value}' is not a Debian suite name such as bookworm")
        return value

    @field_validator("mirror")
    @classmethod
    def _mirror(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return None
        value = value.strip()
        if not re.match(r"^(https?|file)://\S+$", value):
            raise ValueError(f"'{value}' is not a mirror URL (http://, https:// or file://)")
        return value.rstrip("/")

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError(f"{value} has no unit; write e.g. {value}G")
        if isinstance(value, str):
            size = parse_size(value)
            if size < _MIN_SIZE:
                raise ValueError(f"'{value}' is too small; an image needs at least {format_size(_MIN_SIZE)}")
            if size % 4096:
                raise ValueError(f"'{value}' is not a multiple of 4K")
            return format_size(size)
        return value

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str) -> str:
        if len(value) > 253 or not all(_LABEL.match(label) for label in value.split(".")):
            raise ValueError(f"'{value}' is not a valid host name")
        return value

    @property
    def size_bytes(self) -> int:
        return parse_size(self.size)

    @property
    def all_packages(self) -> list[str]:
        """What debootstrap ``--include``s: the base set plus the recipe's packages."""
        return sorted(set(BASE_PACKAGES) | set(self.packages))

    def normalized(self) -> dict[str, Any]:
        """The recipe as plain data with order-insensitive lists sorted; what gets hashed."""
        data = self.model_dump(mode="json")
        data["packages"] = sorted(set(self.packages))
        data["services"] = sorted(set(self.services))
        return data

    def error(self, loc: tuple[Any, ...], message: str, *, hint: str | None = None) -> RecipeError:
        """A ``RecipeError`` naming ``file:line: field`` when the recipe came from a file."""
        if self._source is not None:
            return RecipeError(self._source.error(loc, message).message, hint=hint)
        field = yamlfile.describe(loc) or "(top level)"
        return RecipeError(f"recipe '{self.name}': {field}: {message}", hint=hint)


def load_recipe(path: Path) -> Recipe:
    """Read and validate a recipe file; every problem is a ``RecipeError`` with ``file:line``."""
    path = Path(path)
    try:
        recipe, source = yamlfile.load(path, Recipe)
    except RecipeError:
        raise
    except SpecError as exc:
        raise RecipeError(exc.message, hint=exc.hint) from None
    recipe._source = source
    _check(recipe)
    return recipe


def _check(recipe: Recipe) -> None:
    """Consistency checks that span fields, reported at the offending value."""
    seen_users: set[str] = set()
    for i, user in enumerate(recipe.users):
        if user.name in seen_users:
            raise recipe.error(("users", i, "name"), f"user '{user.name}' is listed twice")
        seen_users.add(user.name)
        if user.ssh_authorized_keys and "openssh-server" not in recipe.packages:
            raise recipe.error(("users", i, "ssh_authorized_keys"),
                               "SSH keys need an SSH server in the image",
                               hint="add openssh-server to packages")
    seen_files: set[str] = set()
    for i, entry in enumerate(recipe.files):
        if entry.path in seen_files:
            raise recipe.error(("files", i, "path"), f"'{entry.path}' is written twice")
        seen_files.add(entry.path)


def recipe_hash(recipe: Recipe) -> str:
    """SHA-256 (hex) of the normalized recipe and the builder version: the cache key.

    ``mirror: null`` stays null here, so the same recipe hashes the same on hosts
    with different default mirrors.
    """
    payload = {"builder": BUILDER_VERSION, "base_packages": sorted(BASE_PACKAGES),
               "recipe": recipe.normalized()}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()
