"""Reading a job's 3MF (bambupi/jobfile/threemf.py): a real slice_info.config, plates, and every bad file a printer
could hand over (not a zip, no slice_info, bad XML, a zip bomb, a huge directory, a missing plate)."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest

from bambupi.jobfile.threemf import (
    CENTRAL_DIRECTORY_MAX_BYTES,
    SLICE_INFO,
    THUMBNAIL_MAX_BYTES,
    JobFileError,
    PlannedFilament,
    central_directory,
    parse_slice_info,
    read_job_file,
)
from bambupi.sim.threemf import SimFilament, make_3mf, plate_picture

FIXTURES = Path(__file__).parent / "fixtures" / "jobfile"
REAL_SLICE_INFO = (FIXTURES / "openspoolman-a1.slice_info.config").read_bytes()
PNG = plate_picture([SimFilament(1, "PLA", "#FF0000", 1.0, "GFA00")])


def three_mf(tmp_path: Path, members: dict[str, bytes], *, name: str = "job.3mf",
             compression: int = zipfile.ZIP_DEFLATED) -> Path:  # fmt: skip
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


def plates_xml(*plates: str) -> bytes:
    return ("<?xml version='1.0' encoding='UTF-8'?><config>" + "".join(plates) + "</config>").encode()


def plate(index: int, *filaments: str, prediction: str = "600") -> str:
    return (f'<plate><metadata key="index" value="{index}"/><metadata key="prediction" value="{prediction}"/>'
            + "".join(filaments) + "</plate>")  # fmt: skip


def test_a_real_slice_info_reads_as_its_plate_says() -> None:
    [info] = parse_slice_info(REAL_SLICE_INFO)
    assert (info.index, info.predicted_s, info.weight_g) == (1, 5450.0, 26.91)
    assert info.filaments == (
        PlannedFilament(1, "PLA", "#0DFF00", 20.26, 6.79, "GFL99"),
        PlannedFilament(2, "PLA", "#000000", 2.15, 0.72, "GFL99"),
        PlannedFilament(6, "PLA", "#0DFF00", 3.58, 1.20, "GFL99"),  # ids are the project's slots: 3-5 unused
        PlannedFilament(7, "PLA", "#000000", 0.92, 0.31, "GFL99"),
    )
    assert sum(f.grams for f in info.filaments) == pytest.approx(info.weight_g)


def test_a_real_slice_info_in_a_3mf_gives_the_job_with_its_thumbnail(tmp_path: Path) -> None:
    path = three_mf(tmp_path, {SLICE_INFO: REAL_SLICE_INFO, "Metadata/plate_1.png": PNG, "3D/3dmodel.model": b"<m/>"})
    job = read_job_file(path, remote_path="/cache/x.3mf", plate=None)
    assert (job.path, job.plate, job.predicted_s, job.weight_g) == ("/cache/x.3mf", 1, 5450.0, 26.91)
    assert len(job.filaments) == 4 and job.thumbnail_png == PNG


def test_the_simulators_3mf_reads_back() -> None:
    filaments = [SimFilament(1, "PLA", "#FFFFFF", 2.5, "GFA00"), SimFilament(2, "PETG", "#FF6A13", 22.5, "GFG02")]
    data = make_3mf(filaments, 1800)
    [info] = parse_slice_info(zipfile.ZipFile(io.BytesIO(data)).read(SLICE_INFO))
    assert [(f.index, f.material, f.colour, f.grams, f.tray_info_idx) for f in info.filaments] == [
        (1, "PLA", "#FFFFFF", 2.5, "GFA00"), (2, "PETG", "#FF6A13", 22.5, "GFG02")]  # fmt: skip
    assert (info.predicted_s, info.weight_g) == (1800, 25.0)


def test_the_plate_the_printer_named_is_read(tmp_path: Path) -> None:
    xml = plates_xml(plate(1, '<filament id="1" type="PLA" color="#111111" used_g="5"/>'),
                     plate(2, '<filament id="2" type="PETG" color="#222222" used_g="7"/>', prediction="900"))
    path = three_mf(tmp_path, {SLICE_INFO: xml, "Metadata/plate_2.png": PNG})
    job = read_job_file(path, remote_path="/x.3mf", plate=2)
    assert (job.plate, job.predicted_s, [f.material for f in job.filaments]) == (2, 900.0, ["PETG"])
    assert job.thumbnail_png == PNG
    with pytest.raises(JobFileError, match=r"^the 3MF has no plate 3 in its slice_info \(it lists plate 1, 2\)$"):
        read_job_file(path, remote_path="/x.3mf", plate=3)


def test_an_unnamed_plate_is_the_one_whose_gcode_the_file_holds(tmp_path: Path) -> None:
    xml = plates_xml(plate(1), plate(2, prediction="42"))
    path = three_mf(tmp_path, {SLICE_INFO: xml, "Metadata/plate_2.gcode": b"G28"})
    assert read_job_file(path, remote_path="/x.3mf", plate=None).predicted_s == 42.0


def test_odd_values_are_left_out_not_fatal() -> None:
    [info] = parse_slice_info(plates_xml(
        '<plate><metadata key="prediction" value="soon"/><metadata key="weight" value="-3"/>'
        '<filament id="1" type="PLA" color="red" used_g="nan"/><filament id="x" used_g="1"/>'
        '<filament id="3" type="PLA" color="#a1b2c3ff" used_g="1.5" used_m=""/></plate>'))  # fmt: skip
    assert (info.index, info.predicted_s, info.weight_g) == (1, None, None)
    assert info.filaments == (PlannedFilament(3, "PLA", "#A1B2C3", 1.5, None, None),)


@pytest.mark.parametrize(
    "members,reason",
    [
        ({"3D/3dmodel.model": b"<m/>"}, "not a sliced 3MF: it has no Metadata/slice_info.config"),
        ({SLICE_INFO: b"<config><plate>"}, "not a 3MF: its slice_info is not well-formed XML"),
        ({SLICE_INFO: b"<config></config>"}, "not a sliced 3MF: its slice_info lists no plate"),
        ({SLICE_INFO: b'<!DOCTYPE x [<!ENTITY a "aaaa">]><config><plate/></config>'},
         "not a 3MF this box reads: its slice_info declares a document type"),
    ],
)
def test_a_bad_slice_info_is_a_reason(tmp_path: Path, members: dict[str, bytes], reason: str) -> None:
    with pytest.raises(JobFileError) as caught:
        read_job_file(three_mf(tmp_path, members), remote_path="/x.3mf", plate=None)
    assert str(caught.value).startswith(reason)


def test_a_file_that_is_no_zip_is_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "x.3mf"
    path.write_bytes(b"<html>404</html>" * 100)
    with pytest.raises(JobFileError, match=r"^not a 3MF: the file is not a zip archive$"):
        read_job_file(path, remote_path="/x.3mf", plate=None)


def test_a_zip_bomb_stops_at_the_bound(tmp_path: Path) -> None:
    """64 MiB of XML comment deflates to ~64 KiB; reading stops past 1 MiB decompressed."""
    bomb = b"<config><plate/><!--" + b" " * (64 * 1024 * 1024) + b"--></config>"
    path = three_mf(tmp_path, {SLICE_INFO: bomb})
    assert path.stat().st_size < 1024 * 1024
    with pytest.raises(JobFileError, match=r"^not a 3MF this box reads: its slice_info is larger than 1024 KiB$"):
        read_job_file(path, remote_path="/x.3mf", plate=None)


def test_a_zip_whose_directory_lies_about_a_size_is_refused(tmp_path: Path) -> None:
    """The directory says 100 bytes; the deflate stream holds 4 MiB: what comes out is counted, not what is said."""
    path = three_mf(tmp_path, {SLICE_INFO: b"<config><plate/><!--" + b"x" * (4 * 1024 * 1024) + b"--></config>"})
    data = bytearray(path.read_bytes())
    for signature, size_at in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):  # uncompressed size fields
        at = data.find(signature)
        data[at + size_at : at + size_at + 4] = struct.pack("<I", 100)
    path.write_bytes(bytes(data))
    with pytest.raises(JobFileError, match=r"^not a 3MF"):
        read_job_file(path, remote_path="/x.3mf", plate=None)


def test_a_huge_zip_directory_is_refused_before_it_is_read() -> None:
    end = b"PK\x05\x06" + struct.pack("<4H2IH", 0, 0, 60000, 60000, CENTRAL_DIRECTORY_MAX_BYTES + 1, 0, 0)
    with pytest.raises(JobFileError, match="its zip directory is 4096 KiB"):
        central_directory(end, CENTRAL_DIRECTORY_MAX_BYTES + 1 + len(end))
    with pytest.raises(JobFileError, match="points outside the file"):
        central_directory(end, len(end))


def test_a_thumbnail_too_large_or_not_a_png_is_left_out(tmp_path: Path) -> None:
    xml = plates_xml(plate(1))
    big = three_mf(tmp_path, {SLICE_INFO: xml, "Metadata/plate_1.png": PNG + b"\0" * THUMBNAIL_MAX_BYTES},
                   name="big.3mf", compression=zipfile.ZIP_STORED)  # fmt: skip
    assert read_job_file(big, remote_path="/x.3mf", plate=None).thumbnail_png is None
    fake = three_mf(tmp_path, {SLICE_INFO: xml, "Metadata/plate_1.png": b"GIF89a"}, name="fake.3mf")
    job = read_job_file(fake, remote_path="/x.3mf", plate=None)
    assert job.thumbnail_png is None and job.plate == 1


def test_a_zip64_archive_reads(tmp_path: Path) -> None:
    """A writer may end any zip the zip64 way (its directory's place in a zip64 end record): it is read the same."""
    path = three_mf(tmp_path, {SLICE_INFO: REAL_SLICE_INFO, "Metadata/plate_1.png": PNG})
    data = path.read_bytes()
    at = data.rfind(b"PK\x05\x06")
    entries, size, offset = struct.unpack("<6xHII", data[at + 4 : at + 20])
    record = b"PK\x06\x06" + struct.pack("<QHHIIQQQQ", 44, 45, 45, 0, 0, entries, entries, size, offset)
    locator = b"PK\x06\x07" + struct.pack("<IQI", 0, at, 1)
    end = b"PK\x05\x06" + struct.pack("<4H2IH", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    path.write_bytes(data[:at] + record + locator + end)
    job = read_job_file(path, remote_path="/x.3mf", plate=None)
    assert job.weight_g == 26.91 and job.thumbnail_png == PNG
    assert central_directory(path.read_bytes(), path.stat().st_size).offset == offset
