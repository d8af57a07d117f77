#!/bin/sh
# First boot: grow the root partition (the last one) and its ext4 file system to the end of the card.
set -eu
source_dev="$(findmnt -no SOURCE /)"
name="$(basename "$source_dev")"
disk="/dev/$(lsblk -no PKNAME "$source_dev")"
part="$(cat "/sys/class/block/$name/partition")"
echo ", +" | sfdisk --force --no-reread --no-tell-kernel -N "$part" "$disk"
partx -u -n "$part" "$disk"
resize2fs "$source_dev"
