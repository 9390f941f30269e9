"""Disks that boot through firmware, as customers' VMs do, made from a labmgr image.

The image's root filesystem (an ext4 labelled ``root``, kernel at ``/vmlinuz``)
goes into a partition of a new raw disk:

- ``bios_disk``: an MBR disk, GRUB's boot.img in the MBR and its core.img in the
  gap before the first partition (SeaBIOS boots it; no ``<kernel>``);
- ``uefi_disk``: a GPT disk, an EFI system partition holding GRUB EFI at the
  removable-media path ``EFI/BOOT/BOOTX64.EFI`` (OVMF boots it with no NVRAM
  entry), then the root partition.

Built on the host without device-mapper, a FAT driver or udev (docs/firmware-disks.md):
partitions are written with ``sfdisk`` into a plain file, the ESP is a FAT
image made with ``mkfs.vfat`` and mtools, GRUB's images are placed with ``dd``
(``grub-install`` would ask udev for the partition offsets). Test and demo
production only: labmgr itself never builds disks.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from ..errors import LabmgrError
from ..image import BuiltImage

SECTOR = 512
FIRST_SECTOR = 2048                      # 1 MiB: GRUB's core.img lives in the gap before it
ESP_MIB = 34                             # FAT32 wants at least 32 MiB
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
GRUB_PC = Path("/usr/lib/grub/i386-pc")
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")     # Debian's ovmf, no Secure Boot
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
# Find the root filesystem by label: the same config boots either layout, whatever disk it is.
GRUB_CFG = """set timeout=0
search --no-floppy --label root --set=root
linux /vmlinuz root=LABEL=root ro console=ttyS0 quiet
initrd /initrd.img
boot
"""
BIOS_MODULES = ("biosdisk", "part_msdos", "ext2", "search", "search_label", "linux", "normal", "configfile",
                "echo", "test")
EFI_MODULES = ("part_gpt", "ext2", "search", "search_label", "linux", "normal", "configfile", "echo", "test")


def bios_disk(image: BuiltImage, out: Path) -> Path:
    """A raw MBR disk booting the image through GRUB for BIOS."""
    with tempfile.TemporaryDirectory(prefix=".lm-fw-", dir=out.parent) as work:
        work_dir = Path(work)
        root_sectors = _virtual_size(image) // SECTOR
        _blank(out, FIRST_SECTOR + root_sectors)
        _partition(out, f"label: dos\nstart={FIRST_SECTOR}, size={root_sectors}, type=83, bootable\n")
        config = work_dir / "early.cfg"
        config.write_text(GRUB_CFG)
        core = work_dir / "core.img"
        _run(["grub-mkimage", "-O", "i386-pc", "-o", str(core), "-c", str(config),
              "-p", "(hd0,msdos1)/boot/grub", *BIOS_MODULES])
        if core.stat().st_size > (FIRST_SECTOR - 1) * SECTOR:
            raise LabmgrError(f"GRUB's core.img ({core.stat().st_size} bytes) does not fit before the partition")
        # boot.img's code only (440 bytes): the partition table after it stays. Its default
        # says core.img starts at sector 1, and grub-mkimage wrote core.img's own length.
        _dd(GRUB_PC / "boot.img", out, seek=0, count_bytes=440)
        _dd(core, out, seek=1)
        _write_root(image, out, FIRST_SECTOR, root_sectors)
    return out


def uefi_disk(image: BuiltImage, out: Path) -> Path:
    """A raw GPT disk: an EFI system partition with GRUB EFI, then the image's root filesystem."""
    with tempfile.TemporaryDirectory(prefix=".lm-fw-", dir=out.parent) as work:
        work_dir = Path(work)
        root_sectors = _virtual_size(image) // SECTOR
        esp_sectors = ESP_MIB * 2**20 // SECTOR
        root_start = FIRST_SECTOR + esp_sectors
        _blank(out, root_start + root_sectors + 34)          # room for the backup GPT
        _partition(out, f"label: gpt\nstart={FIRST_SECTOR}, size={esp_sectors}, type={ESP_TYPE}, name=esp\n"
                        f"start={root_start}, size={root_sectors}, type={LINUX_TYPE}, name=root\n")
        config = work_dir / "grub.cfg"
        config.write_text(GRUB_CFG)
        loader = work_dir / "BOOTX64.EFI"
        _run(["grub-mkstandalone", "-O", "x86_64-efi", "-o", str(loader), "--modules", " ".join(EFI_MODULES),
              "--locales=", "--fonts=", "--themes=", f"boot/grub/grub.cfg={config}"])
        esp = work_dir / "esp.img"
        _run(["mkfs.vfat", "-F", "32", "-n", "ESP", "-C", str(esp), str(ESP_MIB * 1024)])
        _run(["mmd", "-i", str(esp), "::/EFI", "::/EFI/BOOT"])
        _run(["mcopy", "-i", str(esp), str(loader), "::/EFI/BOOT/BOOTX64.EFI"])
        _dd(esp, out, seek=FIRST_SECTOR)
        _write_root(image, out, root_start, root_sectors)
    return out


def _virtual_size(image: BuiltImage) -> int:
    info = subprocess.run(["qemu-img", "info", "--output=json", str(image.disk)],
                          capture_output=True, text=True, check=True).stdout
    return int(json.loads(info)["virtual-size"])


def _write_root(image: BuiltImage, out: Path, start: int, sectors: int) -> None:
    """The image's filesystem straight into its partition: one sparse pass, no intermediate raw copy."""
    _run(["qemu-img", "convert", "-n", "-f", "qcow2", "--target-image-opts", str(image.disk),
          f"driver=raw,offset={start * SECTOR},size={sectors * SECTOR},file.driver=file,file.filename={out}"])


def _blank(path: Path, sectors: int) -> None:
    path.unlink(missing_ok=True)
    with path.open("wb") as f:
        f.truncate(sectors * SECTOR)


def _partition(path: Path, table: str) -> None:
    _run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(path)], stdin=table)


def _dd(source: Path, target: Path, *, seek: int, count_bytes: int | None = None) -> None:
    """Copy ``source`` into ``target`` at sector ``seek``, leaving the rest of ``target`` as it is."""
    argv = ["dd", f"if={source}", f"of={target}", "bs=1M", f"seek={seek * SECTOR}", "oflag=seek_bytes",
            "status=none", "conv=notrunc"]
    if count_bytes is not None:
        argv += [f"count={count_bytes}", "iflag=count_bytes"]
    _run(argv)


def _run(command: list[str], stdin: str | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, input=stdin)
    if result.returncode != 0:
        raise LabmgrError(f"{command[0]} failed: {result.stderr.strip() or result.stdout.strip()}",
                          hint="is the package installed ('make deps' installs grub-pc-bin, "
                               "grub-efi-amd64-bin, mtools, dosfstools, fdisk)?")
