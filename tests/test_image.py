"""Guest image builder: recipe validation, hashing, and a real debootstrap build.

The real build (tests/images/base.yaml) takes ~1-2 minutes the first time; it is
cached in LABMGR_STATE_DIR (default here: /var/tmp/labmgr-test-state), so later
runs take a second.
"""

from __future__ import annotations

import json
import re
import os
import shutil
import stat
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

os.environ.setdefault("LABMGR_STATE_DIR", "/var/tmp/labmgr-test-state")

from labmgr.errors import ImageBuildError, RecipeError, SpecError  # noqa: E402
from labmgr.image import BASE_PACKAGES, BuiltImage, Recipe, build_image, load_recipe, recipe_hash  # noqa: E402
from labmgr.image import host, tree  # noqa: E402
from labmgr.paths import images_dir  # noqa: E402

BASE_RECIPE = Path(__file__).parent / "images" / "base.yaml"


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- recipe errors ----------------------------------------------------------------------


def test_unknown_key_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nsuite: bookworm\npackagez: [curl]\n")
    with pytest.raises(RecipeError, match=rf"^{re.escape(str(path))}:3: packagez: unknown key 'packagez'$"):
        load_recipe(path)


def test_unknown_nested_key(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nusers:\n  - name: root\n    pasword: secret\n")
    with pytest.raises(RecipeError, match=rf"^{re.escape(str(path))}:4: users\[0\]\.pasword: unknown key"):
        load_recipe(path)


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\npackages: [curl\nsize: 2G\n")
    with pytest.raises(RecipeError, match=rf"^{re.escape(str(path))}:\d+: invalid YAML"):
        load_recipe(path)


def test_missing_name(tmp_path: Path) -> None:
    path = write(tmp_path, "suite: bookworm\npackages: [curl]\n")
    with pytest.raises(RecipeError, match=rf"^{re.escape(str(path))}:1: name: required key 'name' is missing$"):
        load_recipe(path)


def test_recipe_error_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError):
        load_recipe(write(tmp_path, "name: x\nbogus: 1\n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="file not found"):
        load_recipe(tmp_path / "nope.yaml")


@pytest.mark.parametrize("text, line, message", [
    ("name: Bad Name\n", 1, "not a valid image name"),
    ("name: x\npackages:\n  - curl\n  - 'curl; rm -rf /'\n", 4, "not a Debian package name"),
    ("name: x\nsize: 2\n", 2, "has no unit"),
    ("name: x\nsize: 100M\n", 2, "too small"),
    ("name: x\nsize: lots\n", 2, "not a size"),
    ("name: x\nhostname: -bad-\n", 2, "not a valid host name"),
    ("name: x\nmirror: deb.example.org\n", 2, "not a mirror URL"),
    ("name: x\nfiles:\n  - path: etc/motd\n    content: hi\n", 3, "absolute path"),
    ("name: x\nfiles:\n  - path: /etc/../../x\n    content: hi\n", 3, "must not contain '..'"),
    ("name: x\nfiles:\n  - path: /proc/x\n    content: hi\n", 3, "runtime filesystem"),
    ("name: x\nfiles:\n  - path: /etc/motd\n    content: hi\n    mode: 644\n", 5, "quote the mode"),
    ("name: x\nfiles:\n  - path: /etc/motd\n    content: hi\n    mode: '0999'\n", 5, "not an octal file mode"),
    ("name: x\nservices: ['a b']\n", 2, "not a systemd unit name"),
    ("name: x\nusers:\n  - name: root\n  - name: root\n", 4, "listed twice"),
    ("name: x\nusers:\n  - name: root\n    ssh_authorized_keys: ['ssh-ed25519 AAAA x']\n", 4,
     "need an SSH server"),
    ("name: x\nfiles:\n  - {path: /etc/a, content: a}\n  - {path: /etc/a, content: b}\n", 4, "written twice"),
    ("name: x\nnetwork: {dhcp: maybe}\n", 2, "network.dhcp"),
])
def test_semantic_errors_point_at_the_value(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    assert str(caught.value).startswith(f"{path}:{line}: "), str(caught.value)
    assert message in str(caught.value)


def test_defaults_and_normalization(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, "name: x\nsize: 2048M\nfiles:\n  - {path: /etc//motd, content: hi,"
                                         " mode: '755'}\n"))
    assert recipe.suite == "bookworm" and recipe.mirror is None and recipe.hostname == "debian"
    assert recipe.size == "2G" and recipe.size_bytes == 2 << 30
    assert recipe.files[0].path == "/etc/motd" and recipe.files[0].mode == "0755"
    assert recipe.network.dhcp is True
    assert set(BASE_PACKAGES) <= set(recipe.all_packages)


def test_base_recipe_loads() -> None:
    recipe = load_recipe(BASE_RECIPE)
    assert recipe.name == "lmt-base"
    assert {"iputils-ping", "netcat-openbsd"} <= set(recipe.packages)
    assert recipe.size == "2G"


# -- hashing ----------------------------------------------------------------------------


def test_recipe_hash_is_stable(tmp_path: Path) -> None:
    text = "name: x\npackages: [curl, iputils-ping]\n"
    first = recipe_hash(load_recipe(write(tmp_path, text, "a.yaml")))
    second = recipe_hash(load_recipe(write(tmp_path, text, "b.yaml")))
    assert first == second
    assert re.fullmatch(r"[0-9a-f]{64}", first), first
    # order of packages does not matter, and neither does an equivalent size spelling
    reordered = load_recipe(write(tmp_path, "name: x\npackages: [iputils-ping, curl, curl]\nsize: 2048M\n", "c.yaml"))
    assert recipe_hash(reordered) == first
    # the same recipe built in Python hashes the same
    assert recipe_hash(Recipe(name="x", packages=["curl", "iputils-ping"])) == first


@pytest.mark.parametrize("change", [
    "name: x\npackages: [curl, iputils-ping, postgresql]\n",
    "name: x\npackages: [curl]\n",
    "name: y\npackages: [curl, iputils-ping]\n",
    "name: x\npackages: [curl, iputils-ping]\nsize: 3G\n",
    "name: x\npackages: [curl, iputils-ping]\nhostname: other\n",
    "name: x\npackages: [curl, iputils-ping]\ncommands: ['true']\n",
    "name: x\npackages: [curl, iputils-ping]\nfiles: [{path: /etc/motd, content: hi}]\n",
    "name: x\npackages: [curl, iputils-ping]\nnetwork: {dhcp: false}\n",
])
def test_recipe_hash_changes_with_content(tmp_path: Path, change: str) -> None:
    base = recipe_hash(load_recipe(write(tmp_path, "name: x\npackages: [curl, iputils-ping]\n", "a.yaml")))
    assert recipe_hash(load_recipe(write(tmp_path, change, "b.yaml"))) != base


# -- host: mirror and tools -------------------------------------------------------------


def test_default_mirror_from_deb822(tmp_path: Path) -> None:
    sources = write(tmp_path, "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n"
                              "Types: deb\n# comment\nURIs: http://one.example/debian/ http://two.example/d\n"
                              "Suites: bookworm\n", "debian.sources")
    assert host.default_mirror(sources, tmp_path / "missing") == "http://one.example/debian"


def test_default_mirror_from_sources_list(tmp_path: Path) -> None:
    sources = write(tmp_path, "# deb http://commented.example/debian bookworm main\n"
                              "deb-src http://src.example/debian bookworm main\n"
                              "deb [arch=amd64 signed-by=/k.gpg] http://list.example/debian bookworm main\n",
                    "sources.list")
    assert host.default_mirror(tmp_path / "missing", sources) == "http://list.example/debian"


def test_no_mirror_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ImageBuildError, match="no Debian mirror found") as caught:
        host.default_mirror(tmp_path / "a", tmp_path / "b")
    assert "mirror:" in (caught.value.hint or "")


def test_missing_tool_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(host.shutil, "which",
                        lambda name, path=None: None if name == "mke2fs" else real_which(name, path=path))
    with pytest.raises(ImageBuildError, match="mke2fs") as caught:
        host.find_tools()
    assert "e2fsprogs" in str(caught.value)


# -- writing into a tree ----------------------------------------------------------------


def test_tree_writes_never_escape_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    outside.mkdir()
    (outside / "victim").write_text("original")
    # absolute symlinks inside the tree, as the guest would see them
    (root / "etc" / "resolv.conf").symlink_to(str(outside / "victim"))
    (root / "link-dir").symlink_to(str(outside))
    tree.write_file(root, "/etc/resolv.conf", "nameserver 192.0.2.1\n")
    tree.write_file(root, "/link-dir/new", "x")
    assert (outside / "victim").read_text() == "original"
    assert not (outside / "new").exists()
    assert (root / "etc" / "resolv.conf").read_text() == "nameserver 192.0.2.1\n"
    assert not (root / "etc" / "resolv.conf").is_symlink()
    # /link-dir -> /tmp/.../outside is resolved inside the root
    assert (root / str(outside).lstrip("/") / "new").read_text() == "x"


# -- a real build -----------------------------------------------------------------------


class RecordingReporter:
    def __init__(self) -> None:
        self.steps: list[str] = []
        self.labels: list[str] = []
        self.notes: list[str] = []

    @contextmanager
    def step(self, label: str, total: float | None = None) -> Iterator["RecordingReporter"]:
        self.steps.append(label)
        yield self

    def advance(self, amount: float = 1) -> None:
        pass

    def update(self, *, completed: float | None = None, total: float | None = None,
               label: str | None = None) -> None:
        if label:
            self.labels.append(label)

    def note(self, message: str) -> None:
        self.notes.append(message)


@pytest.fixture(scope="session")
def base_build() -> tuple[BuiltImage, RecordingReporter, float]:
    """The test suite's guest image, built once and cached in LABMGR_STATE_DIR, with what the
    build reported and how long it took. (Named apart from conftest's ``base_image``, which
    returns the same image without the recording.)"""
    reporter = RecordingReporter()
    started = time.monotonic()
    image = build_image(BASE_RECIPE, reporter)
    return image, reporter, time.monotonic() - started


def debugfs(image: BuiltImage, raw: Path, request: str) -> str:
    result = subprocess.run(["debugfs", "-R", request, str(raw)], capture_output=True, text=True, check=True)
    return result.stdout


@pytest.mark.libvirt     # builds an image (debootstrap, as root)
def test_build_base_image(base_build: tuple[BuiltImage, RecordingReporter, float]) -> None:
    image, reporter, _ = base_build
    recipe = load_recipe(BASE_RECIPE)
    digest = recipe_hash(recipe)
    assert image.recipe_hash == digest
    assert image.disk.parent == images_dir() / f"lmt-base-{digest[:12]}"
    for path in (image.disk, image.kernel, image.initrd):
        assert path.is_file() and path.stat().st_size > 0
    assert image.kernel.name == "vmlinuz" and image.initrd.name == "initrd.img"
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(image.disk)],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["format"] == "qcow2"
    assert info["virtual-size"] == 2 << 30
    assert "backing-filename" not in info
    # the normalized recipe is kept and reloads to the same hash
    saved = Recipe.model_validate(json.loads((image.directory / "recipe.json").read_text()))
    assert recipe_hash(saved) == digest
    build = json.loads((image.directory / "build.json").read_text())
    assert build["kernel_version"] and "iputils-ping" in build["packages"]
    if not image.cached:
        assert reporter.steps == ["debootstrap", "configure", "mkfs", "convert"]
        assert any(label.startswith("debootstrap: ") for label in reporter.labels)
    # nothing of the build is left behind
    assert not list(images_dir().glob(f".tmp-lmt-base-{digest[:12]}-*"))


@pytest.mark.libvirt     # builds an image (debootstrap, as root)
def test_second_build_is_cached_and_fast(base_build: tuple[BuiltImage, RecordingReporter, float]) -> None:
    image, _, _ = base_build
    started = time.monotonic()
    again = build_image(load_recipe(BASE_RECIPE))
    assert time.monotonic() - started < 2
    assert again.cached is True
    assert (again.disk, again.kernel, again.initrd) == (image.disk, image.kernel, image.initrd)


@pytest.mark.libvirt     # builds an image (debootstrap, as root)
def test_image_is_readable_by_libvirt_qemu(base_build: tuple[BuiltImage, RecordingReporter, float]) -> None:
    import grp

    image, _, _ = base_build
    for entry in image.directory.iterdir():
        if entry.name == "recipe.json":     # may hold users' passwords: root's only
            assert stat.S_IMODE(entry.stat().st_mode) == 0o600
        else:
            assert entry.stat().st_mode & stat.S_IROTH, f"{entry} is not world-readable"
    kvm = grp.getgrnam("kvm").gr_gid        # QEMU's group: labmgr's own directories are opened to it
    for directory in [image.directory, *image.directory.parents]:
        info = directory.stat()
        assert info.st_mode & stat.S_IXOTH or (info.st_gid == kvm and info.st_mode & stat.S_IXGRP), \
            f"{directory} is not traversable by libvirt-qemu"


@pytest.mark.libvirt     # builds an image (debootstrap, as root)
def test_image_contents(base_build: tuple[BuiltImage, RecordingReporter, float], tmp_path: Path) -> None:
    """Read the filesystem inside the qcow2 with debugfs (no mount, no boot)."""
    image, _, _ = base_build
    raw = tmp_path / "disk.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(image.disk), str(raw)], check=True)
    cat = lambda path: debugfs(image, raw, f"cat {path}")  # noqa: E731
    assert cat("/etc/hostname") == "lmt-base\n"
    assert "127.0.1.1\tlmt-base" in cat("/etc/hosts")
    assert "/dev/vda / ext4 defaults 0 1" in cat("/etc/fstab")
    assert cat("/etc/machine-id") == ""
    assert "Name=en*" in cat("/etc/systemd/network/90-labmgr-default.network")
    assert "DHCP=yes" in cat("/etc/systemd/network/90-labmgr-default.network")
    assert cat("/etc/motd").startswith("labmgr test guest")
    assert "nameserver" not in cat("/etc/resolv.conf")
    root_entry = [line for line in cat("/etc/shadow").splitlines() if line.startswith("root:")][0]
    assert root_entry.split(":")[1].startswith("$"), "root password is not set"
    wants = debugfs(image, raw, "ls -l /etc/systemd/system/getty.target.wants")
    assert "serial-getty@ttyS0.service" in wants
    assert "systemd-networkd.service" in debugfs(image, raw, "ls -l /etc/systemd/system/multi-user.target.wants")
    assert "systemd-networkd-wait-online" not in debugfs(
        image, raw, "ls -l /etc/systemd/system/network-online.target.wants")
    # the guest agent is started by udev when its virtio port appears; no config restricts it
    assert "qemu-guest-agent.service" in cat("/usr/lib/udev/rules.d/60-qemu-guest-agent.rules")
    assert "qemu-ga.conf" not in debugfs(image, raw, "ls -l /etc/qemu")
    assert "cap_net_raw" in debugfs(image, raw, "ea_list /usr/bin/ping") or \
        "security.capability" in debugfs(image, raw, "ea_list /usr/bin/ping")


@pytest.mark.libvirt     # builds an image (debootstrap, as root)
def test_unknown_package_points_at_the_recipe_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: lmt-broken\npackages:\n  - iputils-ping\n  - no-such-package-labmgr\n")
    recipe = load_recipe(path)
    with pytest.raises(RecipeError, match=rf"^{re.escape(str(path))}:4: packages\[1\]: package 'no-such-package-labmgr' is not"):
        build_image(recipe)
    key = f"lmt-broken-{recipe_hash(recipe)[:12]}"
    assert not (images_dir() / key).exists()
    assert not list(images_dir().glob(f".tmp-{key}-*"))
    assert (images_dir() / f"{key}.failed.log").is_file()


def test_bad_recipe_path_is_a_recipe_error(tmp_path: Path) -> None:
    with pytest.raises(RecipeError):
        build_image(tmp_path / "missing.yaml")
